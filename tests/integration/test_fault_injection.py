"""Random kills: real ``rivet run`` processes killed at random moments, in every mode, into a
local directory and into S3, then run again until they succeed; the committed files are
compared with the source.

Each round is drawn from a seeded generator: the mode, the destination, the database, how
the process dies (SIGKILL or SIGTERM after a random delay, or ``RIVET_CRASH_AT`` at a random
step of the commit order) and when. The properties checked after the recovery run:

- **nothing lost**: every source row is in a file the state store recorded;
- **certified exactly once**: the files of the final manifest (or, for an incremental
  export, of the successful runs) hold every row exactly once, and the destination's files
  of that run are exactly the manifest's (no stale part of a killed attempt);
- **duplicates only where documented, and identifiable**: a row also found elsewhere is in a
  file of a run the state records as failed (a killed incremental run whose files were
  committed before its cursor moved; a killed full snapshot), never in two files of
  successful runs;
- the run that succeeds writes ``_SUCCESS`` and ``rivet validate`` passes.

The default run is a few rounds (about a minute); ``RIVET_FAULT_ROUNDS=200`` runs 200, and
``RIVET_FAULT_SEED`` picks another sequence. The counts are printed at the end (``-s``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import BucketReader, scrubbed_env

from rivet_core.runner.crash import EXIT_CODE, POINTS

ROUNDS = int(os.environ.get("RIVET_FAULT_ROUNDS", "6"))
SEED = int(os.environ.get("RIVET_FAULT_SEED", "20261203"))
ROWS = 3000
S3_ENV = {"RIVET_T_S3_KEY": "testing", "RIVET_T_S3_SECRET": "Sup3rS3cretS3Key"}

MODES = {
    "full": "",
    "incremental": 'mode = "incremental"\ncursor_column = "id"',
    "time_window": 'mode = "time_window"\ntime_column = "at"\ndays_window = 100000',
    "chunked": 'mode = "chunked"\nchunk_column = "id"\nchunk_size = 400',
    "chunked_checkpoint": ('mode = "chunked"\nchunk_column = "id"\nchunk_size = 400\n'
                           "chunk_checkpoint = true\nparallel = 2"),
}
MODE_POINTS = {
    "full": ["after_source_read", "after_file_commit", "after_manifest_row"],
    "time_window": ["after_source_read", "after_file_commit", "after_manifest_row"],
    "incremental": ["after_source_read", "after_file_commit", "after_manifest_row",
                    "after_cursor_commit"],
    "chunked": ["mid_chunk", "after_file_commit", "after_chunk_file", "after_chunk_complete"],
    "chunked_checkpoint": ["mid_chunk", "after_file_commit", "after_chunk_file",
                           "after_chunk_complete"],
}
assert {p for points in MODE_POINTS.values() for p in points} <= POINTS


@dataclass
class Tally:
    rounds: int = 0
    kills: Counter = field(default_factory=Counter)
    killed_runs: int = 0
    finished_before_kill: int = 0
    identifiable_duplicates: int = 0
    lost_rows: int = 0
    certified_duplicates: int = 0


TALLY = Tally()


@pytest.fixture(scope="module")
def report():
    yield TALLY
    print(f"\nrandom kills: {TALLY.rounds} rounds (seed {SEED}), kills by kind "
          f"{dict(TALLY.kills)}, {TALLY.killed_runs} runs killed, "
          f"{TALLY.finished_before_kill} finished before the kill, lost rows "
          f"{TALLY.lost_rows}, duplicates in certified files {TALLY.certified_duplicates}, "
          f"identifiable duplicates in files of failed runs {TALLY.identifiable_duplicates}")


@pytest.fixture(scope="module")
def source_tables(pg_url, mysql_db_url):
    """One table per database: ROWS rows, an integer key and a timestamp."""
    import psycopg
    import pymysql

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.rivet_fault_rows")
        conn.execute("CREATE TABLE public.rivet_fault_rows (id bigint PRIMARY KEY, "
                     "at timestamptz NOT NULL, v text)")
        conn.execute("INSERT INTO public.rivet_fault_rows SELECT g, now() - g * interval '1 "
                     "minute', repeat('p', 40) FROM generate_series(1, %s) g", (ROWS,))
    from rivet_core.config.connection import ConnectionParams

    params = ConnectionParams.from_url(mysql_db_url, default_port=3306)
    conn = pymysql.connect(host=params.host, port=params.port, user=params.user,
                           database=params.database, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS rivet_fault_rows")
        cur.execute("CREATE TABLE rivet_fault_rows (id bigint PRIMARY KEY, "
                    "at TIMESTAMP(6) NOT NULL, v VARCHAR(60))")
        cur.execute("INSERT INTO rivet_fault_rows SELECT seq, UTC_TIMESTAMP(6) - INTERVAL seq "
                    f"MINUTE, REPEAT('m', 40) FROM seq_1_to_{ROWS}")
    conn.close()
    yield {"postgres": (pg_url, "public.rivet_fault_rows"),
           "mysql": (mysql_db_url, "rivet_fault_rows")}


def plan_rounds() -> list[dict]:
    rng = random.Random(SEED)
    rounds = []
    for index in range(ROUNDS):
        mode = rng.choice(sorted(MODES))
        kind = rng.choice(["sigkill", "sigterm", "crash_point"])
        rounds.append({
            "index": index, "mode": mode, "kind": kind,
            "db": rng.choice(["postgres", "mysql"]),
            "destination": rng.choice(["local", "s3"]),
            "delay": rng.uniform(0.1, 1.5),
            "point": f"{rng.choice(MODE_POINTS[mode])}:{rng.randint(1, 3)}",
        })
    return rounds


class Output:
    """Where the round's files go, read back without Rivet."""

    def __init__(self, kind: str, root: Path, endpoint: str | None, bucket: str | None):
        self.kind = kind
        self.root = root
        self.reader = BucketReader(endpoint, bucket) if endpoint and bucket else None

    def toml(self, prefix: str) -> str:
        if self.kind == "local":
            return f'type = "local"\npath = "{self.root}/{prefix}"'
        assert self.reader is not None
        return (f'type = "s3"\nbucket = "{self.reader.bucket}"\n'
                f'endpoint = "{self.reader.endpoint}"\nallow_http = true\n'
                f'region = "us-east-1"\nprefix = "{prefix}"\n'
                'access_key_env = "RIVET_T_S3_KEY"\nsecret_key_env = "RIVET_T_S3_SECRET"')

    def files(self, prefix: str) -> dict[str, bytes]:
        """Visible data files under ``prefix`` (name relative to it → content)."""
        if self.kind == "local":
            base = self.root / prefix
            if not base.exists():
                return {}
            return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*")
                    if p.is_file() and not p.name.startswith(".")
                    and not p.name.endswith(".rivet-tmp")
                    and "_rivet" not in p.relative_to(base).parts}
        assert self.reader is not None
        keys = self.reader.list(prefix + "/")
        return {k[len(prefix) + 1:]: self.reader.read(k) for k in keys
                if "/_rivet/" not in "/" + k[len(prefix) + 1:]}

    def manifest(self, prefix: str) -> dict | None:
        name = "_rivet/t/manifest.json"
        if self.kind == "local":
            path = self.root / prefix / name
            return json.loads(path.read_text()) if path.exists() else None
        assert self.reader is not None
        key = f"{prefix}/{name}"
        return json.loads(self.reader.read(key)) if key in self.reader.list(key) else None


def ids_of(content: bytes) -> list[int]:
    rows = csv.DictReader(io.StringIO(content.decode()))
    return [int(r["id"]) for r in rows]


def state(project: Path, sql: str) -> list[tuple]:
    path = project / ".rivet_state.db"
    if not path.exists():  # the run was killed before it opened the state
        return []
    # Read-only: a check must never create (or change) the state it inspects.
    db = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def run(project: Path, *args: str, crash: str | None = None) -> subprocess.Popen[str]:
    env = scrubbed_env(S3_ENV)
    env.pop("RIVET_CRASH_AT", None)
    if crash:
        env["RIVET_CRASH_AT"] = crash
    return subprocess.Popen([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                             str(project / "rivet.toml"), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def validate(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rivet_core.cli.main", "validate", "-c",
                           str(project / "rivet.toml")], env=scrubbed_env(S3_ENV), text=True,
                          capture_output=True, check=False)


@pytest.mark.parametrize("spec", plan_rounds(), ids=lambda r: f"{r['index']}-{r['mode']}-"
                         f"{r['kind']}-{r['db']}-{r['destination']}")
def test_random_kill_then_recovery_loses_nothing_and_certifies_once(
        spec, source_tables, tmp_path, moto_endpoint, report):
    from servers import new_bucket

    url, table = source_tables[spec["db"]]
    bucket = new_bucket(moto_endpoint) if spec["destination"] == "s3" else None
    output = Output(spec["destination"], tmp_path / "out", moto_endpoint, bucket)
    prefix = "t" if spec["mode"] in ("incremental", "chunked_checkpoint") else "t/{run_id}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "rivet.toml").write_text(f"""
[source]
type = "{spec['db']}"
url = "{url}"

[[exports]]
name = "t"
table = "{table}"
format = "csv"
max_file_size = "24KB"
{MODES[spec['mode']]}
[exports.tuning]
batch_size = 150
throttle_ms = 40
max_retries = 0
[exports.destination]
{output.toml(prefix)}
""")
    report.rounds += 1
    report.kills[spec["kind"]] += 1
    crash = spec["point"] if spec["kind"] == "crash_point" else None
    process = run(project, crash=crash)
    if spec["kind"] != "crash_point":
        try:
            process.wait(timeout=spec["delay"])
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL if spec["kind"] == "sigkill"
                                else signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    if process.returncode == 0:
        report.finished_before_kill += 1
    else:
        report.killed_runs += 1
        assert process.returncode in (EXIT_CODE, 130, -signal.SIGKILL), (process.returncode,
                                                                          err)
    # Recovery: run again (resuming a checkpointed chunk run) until a run succeeds.
    for _ in range(3):
        resume = ("--resume",) if spec["mode"] == "chunked_checkpoint" and state(
            project, "SELECT 1 FROM chunk_runs WHERE status = 'in_progress'") else ()
        again = run(project, *resume)
        _, err = again.communicate(timeout=300)
        assert "Traceback" not in err, err
        if again.returncode == 0:
            break
    assert again.returncode == 0, err
    check_round(spec, project, output, prefix, report)


def check_round(spec: dict, project: Path, output: Output, prefix: str, report: Tally) -> None:
    runs = dict(state(project, "SELECT run_id, status FROM runs"))
    recorded = state(project, "SELECT file_name, run_id FROM files")
    top = prefix.split("/")[0]
    visible = output.files(top)
    by_name = {}
    for path, content in visible.items():
        by_name[path.rsplit("/", 1)[-1]] = (path, content)
    # Nothing lost: every row is in a recorded, visible file.
    recorded_ids: Counter = Counter()
    for name, _run_id in recorded:
        if name in by_name:
            recorded_ids.update(ids_of(by_name[name][1]))
    lost = set(range(1, ROWS + 1)) - set(recorded_ids)
    report.lost_rows += len(lost)
    assert not lost, f"{len(lost)} rows lost"
    # Certified exactly once.
    if spec["mode"] == "incremental":
        certified = [name for name, run_id in recorded if runs.get(run_id) == "success"]
    else:
        (last,) = state(project, "SELECT run_id FROM runs WHERE status = 'success' "
                                 "ORDER BY finished_at DESC LIMIT 1")[0]
        manifest_prefix = prefix.replace("{run_id}", last)
        manifest = output.manifest(manifest_prefix)
        assert manifest is not None and manifest["status"] == "success"
        certified = [f["name"] for f in manifest["files"]]
        held = {p.rsplit("/", 1)[-1] for p in visible if last in p}
        assert held == set(certified), "the destination holds other files of the run"
    counts: Counter = Counter()
    for name in certified:
        counts.update(ids_of(by_name[name][1]))
    twice = [i for i, n in counts.items() if n > 1]
    report.certified_duplicates += len(twice)
    assert not twice, f"{len(twice)} rows certified twice"
    if spec["mode"] != "incremental":
        assert set(counts) == set(range(1, ROWS + 1))
    # A successful run's visible files are exactly those the state records for it; any
    # other file with a certified row belongs to a failed run (an identifiable duplicate).
    by_run: dict[str, set[str]] = {}
    for name, run_id in recorded:
        by_run.setdefault(run_id, set()).add(name)
    for run_id, status in runs.items():
        if status == "success":
            held = {name for name in by_name if run_id in name}
            assert held == by_run.get(run_id, set()), f"run {run_id}: files differ from state"
    certified_set = set(certified)
    for name, (_path, content) in by_name.items():
        if name in certified_set:
            continue
        run_id = next((r for r in runs if r in name), None)
        if run_id is None or runs[run_id] != "success":
            report.identifiable_duplicates += len(set(ids_of(content)) & set(counts))
    done = validate(project)
    assert done.returncode == 0, done.stdout + done.stderr
