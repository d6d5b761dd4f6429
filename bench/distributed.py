"""Distributed chunked runs, measured: the narrow benchmark table exported by
``rivet run --distributed --wait`` with 1, 2 and 3 ``rivet worker`` processes
(docs/scale.md), printing the wall time of each.

    .venv/bin/python bench/distributed.py [--workers 1,2,3] [--table narrow_10m]
        [--concurrency 1] [--chunk-size N] [--format parquet]

The source is the benchmark database (``RIVETBENCH_PG_URL``, default
postgresql://postgres@127.0.0.1:5432/rivet_bench, seeded by ``bench/run.py``); the state
store, and with it the task queue, is a fresh schema of that database for each measurement,
dropped afterwards. The workers are started (and registered with the queue) before the
clock starts, as long-lived workers are in production: the time is the run's, from planning
to the last chunk's certification. Each run's output is checked (rows, ``_SUCCESS``) and
deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/rivet_bench"
RIVET = [sys.executable, "-m", "rivet_core.cli.main"]


def config_text(url: str, schema: str, table: str, fmt: str, chunk_size: int | None) -> str:
    sizing = f"chunk_size = {chunk_size}\n" if chunk_size else ""
    return f"""
[source]
type = "postgres"
url = "{url}"

[state]
url = "{url}"
schema = "{schema}"

[[exports]]
name = "{table}"
table = "public.{table}"
mode = "chunked"
chunk_checkpoint = true
{sizing}format = "{fmt}"
[exports.destination]
type = "local"
path = "./out"
"""


def measure(url: str, table: str, workers: int, *, concurrency: int, fmt: str,
            chunk_size: int | None) -> dict[str, Any]:
    schema = f"rivet_bench_dist_{uuid.uuid4().hex[:8]}"
    project = Path(tempfile.mkdtemp(prefix="rivet-dist-"))
    config = project / "rivet.toml"
    config.write_text(config_text(url, schema, table, fmt, chunk_size))
    env = {k: v for k, v in os.environ.items() if k != "RIVET_STATE_URL"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([*RIVET, "worker", "--init", "-c", str(config)], check=True,
                       capture_output=True, env=env, cwd=project)
        for i in range(workers):
            log = open(project / f"worker{i}.log", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [*RIVET, "worker", "-c", str(config), "--concurrency", str(concurrency)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=project))
        _wait_registered(url, schema, workers)
        start = time.monotonic()
        done = subprocess.run([*RIVET, "run", "--distributed", "--wait", "--json", "-c",
                               str(config)], capture_output=True, text=True, env=env,
                              cwd=project)
        wall = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr}")
        (run,) = json.loads(done.stdout)["runs"]
        if not (project / "out" / "_rivet" / table / "_SUCCESS").exists():
            raise SystemExit("the run has no _SUCCESS")
        return {"workers": workers, "concurrency": concurrency, "chunks": run["chunks"],
                "rows": run["rows"], "wall_s": round(wall, 2),
                "rows_per_s": round(run["rows"] / wall)}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(project, ignore_errors=True)


def _wait_registered(url: str, schema: str, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if row is not None and row[0] >= workers:
                return
            time.sleep(0.2)
    raise SystemExit(f"{workers} worker(s) did not register within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,3",
                        help="worker counts to measure, comma-separated (default 1,2,3)")
    parser.add_argument("--table", default="narrow_10m")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="--concurrency of each worker (default 1)")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="default: the planner's choice from the catalog")
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    args = parser.parse_args()
    url = os.environ.get("RIVETBENCH_PG_URL", DEFAULT_URL)
    results = []
    for count in (int(n) for n in args.workers.split(",")):
        result = measure(url, args.table, count, concurrency=args.concurrency,
                         fmt=args.format, chunk_size=args.chunk_size)
        results.append(result)
        print(f"{args.table}: {count} worker(s) x {args.concurrency}: {result['chunks']} "
              f"chunks, {result['rows']:,} rows in {result['wall_s']:.2f} s "
              f"({result['rows_per_s']:,} rows/s)", flush=True)
    base = results[0]["wall_s"]
    for r in results:
        print(f"  {r['workers']} worker(s): {r['wall_s']:.2f} s, speed-up "
              f"{float(base) / float(r['wall_s']):.2f}x")


if __name__ == "__main__":
    main()
