"""Distributed chunked runs against real processes: ``rivet run --distributed`` queues the
chunks of a run in the PostgreSQL state store, ``rivet worker`` subprocesses read them, one
of them is killed with SIGKILL in the middle of a chunk, and the run still delivers every
row exactly once, certified once. What is stored is read back with psycopg and pyarrow, not
through Rivet.

``RIVET_DISTRIBUTED_BIG=1`` adds the run of the benchmark's 10M-row narrow table
(``rivet_bench.public.narrow_10m``, seeded by bench/) with three workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

pytest.importorskip("procrastinate")

HEARTBEAT = "0.5"
"""Short, so a killed worker is taken for dead within 1.5 s."""


@pytest.fixture
def state_schema(pg_url: str) -> Iterator[str]:
    name = f"rivet_dist_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def make_table(pg, name: str, rows: int) -> None:
    pg.execute(f"DROP TABLE IF EXISTS {name}")
    pg.execute(f"CREATE TABLE {name} (id bigint PRIMARY KEY, v integer NOT NULL)")
    pg.execute(f"INSERT INTO {name} SELECT g, g % 1000 FROM generate_series(1, {rows}) g")
    pg.execute(f"ANALYZE {name}")


def write_config(path: Path, *, source_url: str, state_url: str | None, schema: str,
                 relation: str, chunk_size: int, batch_size: int = 50_000,
                 throttle_ms: int = 0, query: str | None = None,
                 mode: str = "chunked") -> Path:
    what = f'query = "{query}"\nchunk_column = "id"' if query else f'table = "{relation}"'
    state = f'[state]\nurl = "{state_url}"\nschema = "{schema}"\n' if state_url else ""
    chunking = (f"chunk_size = {chunk_size}\nchunk_checkpoint = true\n"
                if mode == "chunked" else "")
    config = path / "rivet.toml"
    config.write_text(f"""
[source]
type = "postgres"
url = "{source_url}"

{state}
[[exports]]
name = "t"
{what}
mode = "{mode}"
{chunking}format = "parquet"
[exports.tuning]
batch_size = {batch_size}
throttle_ms = {throttle_ms}
[exports.destination]
type = "local"
path = "./out"
""")
    return config


def rivet(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rivet_core.cli.main", *args, "-c",
                           str(config)], capture_output=True, text=True, timeout=timeout,
                          cwd=config.parent, env=_env())


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RIVET_STATE_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Workers:
    """``rivet worker`` subprocesses, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        log = open(self.config.parent / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "rivet_core.cli.main", "worker", "-c", str(self.config),
             "--heartbeat", HEARTBEAT, "--concurrency", str(concurrency)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.config.parent, env=_env())
        self.procs.append(proc)
        return proc

    def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                # Beyond the worker's 60 s grace for a chunk being read: under a loaded
                # machine one worker once took over 20 s to stop (see docs/scale.md).
                codes.append(proc.wait(timeout=75))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def logs(self) -> str:
        return "\n".join((self.config.parent / f"worker{i}.log").read_text(errors="replace")
                         for i in range(len(self.procs)))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path / "rivet.toml")
    yield pool
    pool.stop()


def state(pg_url: str, schema: str, sql: str, args: tuple = ()) -> list[tuple]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return conn.execute(sql, args).fetchall()


def wait_for(check, timeout: float, what: str, workers: Workers | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    logs = workers.logs()[-4000:] if workers is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def run_status(pg_url: str, schema: str, run_id: str) -> str:
    rows = state(pg_url, schema, "SELECT status FROM runs WHERE run_id = %s", (run_id,))
    return rows[0][0] if rows else "running"  # recorded once finished


def run_id_of(out: str) -> str:
    return json.loads(out)["runs"][0]["run_id"]


def data_ids(directory: Path) -> list[int]:
    ids: list[int] = []
    for file in sorted(directory.glob("*.parquet")):
        ids.extend(pq.read_table(file, columns=["id"]).column("id").to_pylist())
    return sorted(ids)


def test_a_worker_killed_mid_chunk_loses_no_row_and_the_run_is_certified_once(
        tmp_path, pg, pg_url, pg_schema, state_schema, workers):
    rows = 200_000
    make_table(pg, "dist_narrow", rows)
    # 20 chunks of 10 batches each, throttled: a chunk takes about a second, so a worker
    # is inside one almost all the time.
    config = write_config(tmp_path, source_url=pg_url, state_url=pg_url, schema=state_schema,
                          relation=f"{pg_schema}.dist_narrow", chunk_size=10_000,
                          batch_size=1_000, throttle_ms=60)
    queued = rivet(config, "run", "--distributed", "--json")
    assert queued.returncode == 0, queued.stderr
    run_id = run_id_of(queued.stdout)
    assert "20 chunk(s), 20 queued" in queued.stderr
    assert run_status(pg_url, state_schema, run_id) == "running"

    victim = workers.start()
    running = "SELECT idx FROM chunk_tasks WHERE status = 'running'"
    wait_for(lambda: state(pg_url, state_schema, running), 30, "a claimed chunk", workers)
    workers.start()
    workers.start()
    wait_for(lambda: len(state(pg_url, state_schema, running)) >= 3, 30,
             "three chunks read at once", workers)
    # The chunk the first worker (the first registered) has claimed and is reading now.
    victims_chunk = (
        "SELECT t.idx FROM procrastinate_jobs j JOIN chunk_tasks t "
        "ON t.run_id = j.args->>'run_id' AND t.idx = (j.args->>'idx')::int "
        "WHERE j.status = 'doing' AND t.status = 'running' "
        "AND j.worker_id = (SELECT min(id) FROM procrastinate_workers)")
    in_flight = wait_for(lambda: {r[0] for r in state(pg_url, state_schema, victims_chunk)},
                         30, "the first worker inside a chunk", workers)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    # Killed mid-chunk: the chunk is still claimed, and nothing of it is visible.
    (idx,) = in_flight
    assert state(pg_url, state_schema, "SELECT status, attempts FROM chunk_tasks WHERE "
                 "idx = %s", (idx,)) == [("running", 1)]
    assert not list((tmp_path / "out").glob(f"*_chunk{idx:06d}*.parquet"))

    wait_for(lambda: run_status(pg_url, state_schema, run_id) != "running", 60,
             "the run to finish", workers)
    assert run_status(pg_url, state_schema, run_id) == "success", workers.logs()[-3000:]
    assert [c for c in workers.stop()[1:]] == [130, 130]

    # The killed worker's chunk was taken over (a second attempt) by another worker.
    tasks = dict(state(pg_url, state_schema,
                       "SELECT idx, attempts FROM chunk_tasks WHERE status = 'completed'"))
    assert len(tasks) == 20
    assert tasks[idx] == 2, tasks
    out = tmp_path / "out"
    assert data_ids(out) == list(range(1, rows + 1))  # every row exactly once
    manifest = json.loads((out / "_rivet" / "t" / "manifest.json").read_text())
    assert manifest["run_id"] == run_id and manifest["status"] == "success"
    assert sorted(f["name"] for f in manifest["files"]) == sorted(
        p.name for p in out.glob("*.parquet"))
    assert manifest["totals"]["rows"] == rows
    assert json.loads((out / "_rivet" / "t" / "_SUCCESS").read_text())["run_id"] == run_id
    assert state(pg_url, state_schema, "SELECT status FROM chunk_runs") == [("completed",)]
    finished = state(pg_url, state_schema, "SELECT count(*) FROM journal WHERE run_id = %s "
                     "AND event = 'run_finished'", (run_id,))
    assert finished == [(1,)]  # finalized exactly once
    validated = rivet(config, "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_wait_follows_the_run_to_its_end_and_exits_with_its_outcome(
        tmp_path, pg, pg_url, pg_schema, state_schema, workers):
    make_table(pg, "dist_wait", 5_000)
    config = write_config(tmp_path, source_url=pg_url, state_url=pg_url, schema=state_schema,
                          relation=f"{pg_schema}.dist_wait", chunk_size=1_000)
    workers.start(concurrency=2)
    done = rivet(config, "run", "--distributed", "--wait")
    assert done.returncode == 0, done.stderr + workers.logs()[-3000:]
    assert "t: 5/5 chunks, 5,000 rows" in done.stderr
    assert "✓ t  success  5,000 rows" in done.stderr
    assert (tmp_path / "out" / "_rivet" / "t" / "_SUCCESS").exists()
    # A second run queues again and succeeds again (the first chunk run is completed).
    again = rivet(config, "run", "--distributed", "--wait", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["status"] == "success" and summary["runs"][0]["rows"] == 5_000


def test_distributed_is_refused_without_a_postgres_state_store_or_a_chunked_export(
        tmp_path, pg, pg_url, pg_schema, state_schema):
    make_table(pg, "dist_refused", 10)
    config = write_config(tmp_path, source_url=pg_url, state_url=None, schema=state_schema,
                          relation=f"{pg_schema}.dist_refused", chunk_size=5)
    refused = rivet(config, "run", "--distributed")
    assert refused.returncode == 2, refused.stderr
    assert "distributed runs need a PostgreSQL state store" in refused.stderr
    assert "RIVET_STATE_URL" in refused.stderr
    worker = rivet(config, "worker")
    assert worker.returncode == 2 and "PostgreSQL state store" in worker.stderr
    assert not (tmp_path / ".rivet_state.db").exists()

    full = write_config(tmp_path, source_url=pg_url, state_url=pg_url, schema=state_schema,
                        relation=f"{pg_schema}.dist_refused", chunk_size=5, mode="full")
    refused = rivet(full, "run", "--distributed")
    assert refused.returncode == 2
    assert "splits chunked exports" in refused.stderr
    assert not (tmp_path / "out").exists()


def test_a_permanent_error_fails_its_chunk_once_and_the_run_without_success(
        tmp_path, pg, pg_url, pg_schema, state_schema, workers):
    make_table(pg, "dist_broken", 1_000)
    # Row 550 divides by zero: a permanent error, in chunk 5 of 10.
    config = write_config(tmp_path, source_url=pg_url, state_url=pg_url, schema=state_schema,
                          relation="", chunk_size=100,
                          query=f"SELECT id, 10 / (id - 550) AS q FROM "
                                f"{pg_schema}.dist_broken")
    workers.start()
    failed = rivet(config, "run", "--distributed", "--wait")
    assert failed.returncode == 1, failed.stderr + workers.logs()[-3000:]
    assert "✗ t  failed" in failed.stderr
    assert "division by zero" in failed.stderr
    broken = state(pg_url, state_schema, "SELECT idx, status, attempts FROM chunk_tasks "
                   "WHERE status <> 'completed' AND status <> 'pending'")
    assert [(status, attempts) for _, status, attempts in broken
            if status == "failed"] == [("failed", 1)]
    out = tmp_path / "out" / "_rivet" / "t"
    assert not (out / "_SUCCESS").exists()
    if (out / "manifest.json").exists():
        assert json.loads((out / "manifest.json").read_text())["status"] == "failed"
    assert state(pg_url, state_schema, "SELECT status FROM chunk_runs") == [("in_progress",)]
    refused = rivet(config, "run", "--distributed")
    assert refused.returncode != 0 and "--resume" in refused.stderr

    # The cause fixed, --resume continues the run: completed chunks are not read again.
    pg.execute("DELETE FROM dist_broken WHERE id = 550")
    resumed = rivet(config, "run", "--distributed", "--resume", "--wait")
    assert resumed.returncode == 0, resumed.stderr + workers.logs()[-3000:]
    run_ids = {r[0] for r in state(pg_url, state_schema, "SELECT run_id FROM chunk_runs")}
    assert len(run_ids) == 1 and "(resumed)" in resumed.stderr
    assert data_ids(tmp_path / "out") == [i for i in range(1, 1_001) if i != 550]
    assert (out / "_SUCCESS").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "success"


@pytest.mark.skipif(os.environ.get("RIVET_DISTRIBUTED_BIG") != "1",
                    reason="the 10M-row run: set RIVET_DISTRIBUTED_BIG=1 (needs bench/'s "
                           "rivet_bench database seeded)")
def test_the_ten_million_row_narrow_table_with_three_workers(tmp_path, state_schema, workers):
    bench_url = os.environ.get("RIVETBENCH_PG_URL",
                               "postgresql://postgres@127.0.0.1:5432/rivet_bench")
    state_url = os.environ.get("RIVET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    config = write_config(tmp_path, source_url=bench_url, state_url=state_url,
                          schema=state_schema, relation="public.narrow_10m",
                          chunk_size=250_000)
    queued = rivet(config, "run", "--distributed", "--json")
    assert queued.returncode == 0, queued.stderr
    victim = workers.start()
    workers.start()
    workers.start()
    run_id = run_id_of(queued.stdout)
    # As in the small run: the first worker is SIGKILLed while it reads a chunk.
    victims_chunk = (
        "SELECT t.idx FROM procrastinate_jobs j JOIN chunk_tasks t "
        "ON t.run_id = j.args->>'run_id' AND t.idx = (j.args->>'idx')::int "
        "WHERE j.status = 'doing' AND t.status = 'running' "
        "AND j.worker_id = (SELECT min(id) FROM procrastinate_workers)")
    in_flight = wait_for(lambda: {r[0] for r in state(state_url, state_schema, victims_chunk)},
                         120, "the first worker inside a chunk", workers)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    (idx,) = in_flight
    assert not list((tmp_path / "out").glob(f"*_chunk{idx:06d}*.parquet"))
    wait_for(lambda: run_status(state_url, state_schema, run_id) != "running", 1200,
             "the 10M-row run", workers)
    assert run_status(state_url, state_schema, run_id) == "success"
    attempts = dict(state(state_url, state_schema,
                          "SELECT idx, attempts FROM chunk_tasks WHERE status = 'completed'"))
    assert attempts[idx] == 2
    markers = list((tmp_path / "out").glob("_rivet/*/_SUCCESS"))
    assert len(markers) == 1 and json.loads(markers[0].read_text())["run_id"] == run_id
    finished = state(state_url, state_schema, "SELECT count(*) FROM journal WHERE run_id = %s "
                     "AND event = 'run_finished'", (run_id,))
    assert finished == [(1,)]
    ids = pa.concat_arrays([pq.read_table(f, columns=["id"]).column("id").combine_chunks()
                            for f in (tmp_path / "out").glob("*.parquet")])
    assert len(ids) == pc.count_distinct(ids).as_py() == 10_000_000
    assert rivet(config, "validate").returncode == 0
