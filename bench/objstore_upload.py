"""Upload throughput and peak RSS of `rivet run` exporting ~1 GiB to S3 (moto) and GCS.

Starts moto's S3 server and the test suite's GCS XML-API server on 127.0.0.1 (the same
helpers as tests/servers), exports ``generate_series`` rows from PostgreSQL as one
uncompressed CSV file of about ``--gib`` GiB to each, plus the local disk as a baseline, and
prints wall time, MB/s, the rivet process's peak RSS and the server's peak RSS.

    .venv/bin/python bench/objstore_upload.py [--gib 1.0] [--pg-url URL] [--part-size 8MB]

Client and servers share the machine, so the numbers bound, rather than measure, what a
real bucket gives.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import (  # noqa: E402 - tests/ is put on the path just above
    gcs_server,
    gcs_service_account,
    moto_server,
    new_bucket,
    scrubbed_env,
)

BYTES_PER_ROW = 204  # "1234567,<192 hex chars>\n" on average over the range


def children_peak_rss_mb(pid_filter: str) -> float | None:
    """Peak RSS (VmHWM) of this process's child whose command line contains the filter."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("PPid:"))
        if ppid == os.getpid() and pid_filter in cmdline:
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return None


def run_export(work: Path, pg_url: str, rows: int, destination: str,
               env: dict[str, str]) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "rivet.toml").write_text(f"""
[source]
type = "postgres"
url = "{pg_url}"
[source.tuning]
profile = "fast"

[[exports]]
name = "bench"
query = "SELECT g AS id, repeat(md5(g::text), 6) AS payload FROM generate_series(1, {rows}) g"
format = "csv"

[exports.destination]
{destination}
""")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rivet_core.cli.main", "run", "-c",
                           "rivet.toml", "--json"], cwd=work, capture_output=True,
                          env=scrubbed_env(env), check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"rivet failed: {done.stderr.decode()}")
    (export,) = json.loads(done.stdout)["exports"]
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"bytes": export["bytes"], "rows": export["rows"], "wall_s": wall,
            "mb_s": export["bytes"] / 1e6 / wall,
            "rivet_peak_rss_mb": max(export["peak_rss_mb"] or 0,
                                     (child_peak if child_peak > before else 0) / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--pg-url", default=os.environ.get(
        "RIVET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--part-size", default="8MB")
    parser.add_argument("--only", choices=["local", "s3", "gcs"], action="append")
    args = parser.parse_args()
    rows = int(args.gib * (1 << 30) / BYTES_PER_ROW)
    targets = args.only or ["local", "s3", "gcs"]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rivet-bench-") as tmp:
        work = Path(tmp)
        if "local" in targets:
            results["local"] = run_export(work / "local", args.pg_url, rows,
                                          'type = "local"\npath = "./out"', {})
            results["local"]["server_peak_rss_mb"] = None
        if "s3" in targets:
            with moto_server(work / "moto.log") as url:
                bucket = new_bucket(url)
                env = {"BENCH_KEY": "testing", "BENCH_SECRET": "testing"}
                results["s3"] = run_export(
                    work / "s3", args.pg_url, rows,
                    f'type = "s3"\nbucket = "{bucket}"\nendpoint = "{url}"\n'
                    'allow_http = true\nregion = "us-east-1"\naccess_key_env = "BENCH_KEY"\n'
                    f'secret_key_env = "BENCH_SECRET"\npart_size = "{args.part_size}"', env)
                results["s3"]["server_peak_rss_mb"] = children_peak_rss_mb("moto.server")
        if "gcs" in targets:
            with gcs_server(work) as url:
                bucket = new_bucket(url)
                credentials = gcs_service_account(url, work)
                results["gcs"] = run_export(
                    work / "gcs", args.pg_url, rows,
                    f'type = "gcs"\nbucket = "{bucket}"\nendpoint = "{url}"\n'
                    f'allow_http = true\ncredentials_file = "{credentials}"\n'
                    f'part_size = "{args.part_size}"', {})
                results["gcs"]["server_peak_rss_mb"] = children_peak_rss_mb("gcs_xml_server")
    print(f"{'target':<7} {'rows':>11} {'MiB':>8} {'wall s':>7} {'MB/s':>7} "
          f"{'rivet RSS MiB':>14} {'server RSS MiB':>15}")
    for name, r in results.items():
        server = r["server_peak_rss_mb"]
        shown = "-" if server is None else f"{server:.0f}"
        print(f"{name:<7} {r['rows']:>11,} {r['bytes'] / (1 << 20):>8.0f} {r['wall_s']:>7.1f} "
              f"{r['mb_s']:>7.1f} {r['rivet_peak_rss_mb']:>14.0f} {shown:>15}")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
