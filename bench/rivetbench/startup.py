"""The start-up shape: how long the ``rivet`` command takes before it does any work.

Each command is started ``runs`` times as its own process, exactly as the other shapes start
Rivet (``.venv/bin/rivet``, the console script of ``[project.scripts]``, through GNU time
when it is installed), the commands alternating (run *i* rotated by *i*), after one untimed
warm-up start of each. Then one more start of each under ``python -X importtime`` (the
console script run by the interpreter of its shebang, which is what ``rivet`` does) gives
the modules imported, their total import time and which heavy packages were among them.

The commands:

- ``python -c pass``: the bare interpreter of the venv, the floor under everything else;
- ``rivet --version``, ``rivet --help``, ``rivet plugins``: no config;
- ``rivet check -c rivet.toml``: one ``table`` export of a small narrow table (config and
  plan only: ``check`` connects to nothing without ``--type-report`` / ``--preflight``);
- ``rivet run -c rivet.toml``, per database: the same export run for real, 1,000 rows: the
  fixed cost of a whole run (connection, catalog, one file, state, manifest).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rivetbench import report, rivetcfg, tools
from rivetbench.fixtures import Table
from rivetbench.measure import run_child
from rivetbench.settings import RIVET_BIN, Database
from rivetbench.verify import read_back

Log = Callable[[str], None]


@dataclass(frozen=True)
class Command:
    """One start-up command. ``args`` follow the program; ``config_db`` is set when the
    command needs a generated ``rivet.toml`` (of that database); ``expected_rows`` when its
    output is read back."""

    label: str
    args: tuple[str, ...]
    rivet: bool = True
    config_db: Database | None = None
    expected_rows: int | None = None


def python_bin() -> Path:
    """The interpreter of the ``rivet`` console script (its shebang), else the venv's."""
    try:
        first = RIVET_BIN.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        first = ""
    if first.startswith("#!") and Path(first[2:].strip()).exists():
        return Path(first[2:].strip())
    return RIVET_BIN.parent / "python"


def commands(dbs: list[Database], table: Table, expected: dict[tuple[str, str], int]
             ) -> list[Command]:
    found = [
        Command("python -c pass", ("-c", "pass"), rivet=False),
        Command("rivet --version", ("--version",)),
        Command("rivet --help", ("--help",)),
        Command("rivet plugins", ("plugins",)),
    ]
    if dbs:
        found.append(Command(f"rivet check -c rivet.toml ({table.name}, {dbs[0].kind})",
                             ("check", "-c", "rivet.toml"), config_db=dbs[0]))
    for db in dbs:
        found.append(Command(f"rivet run -c rivet.toml ({table.name}, {db.kind})",
                             ("run", "-c", "rivet.toml", "--json", "--no-progress"),
                             config_db=db, expected_rows=expected[(db.kind, table.name)]))
    return found


_WRAPPER = """\
import os, sys
_real_exit = os._exit
def _dump():
    with open({dump!r}, "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))
def _exit(code):
    _dump()
    _real_exit(code)
os._exit = _exit
sys.argv = {argv!r}
try:
    if {script!r}:
        sys.path[0] = {script_dir!r}
        with open({script!r}) as handle:
            code = compile(handle.read(), {script!r}, "exec")
        exec(code, {{"__name__": "__main__", "__file__": {script!r}}})
    else:
        exec({source!r}, {{"__name__": "__main__"}})
finally:
    _dump()
"""


def importtime_wrapper(command: Command, dump: Path) -> str:
    """The ``-c`` program of the ``-X importtime`` start: it runs the console script (or the
    command's own ``-c`` source) as ``python <script>`` would, and writes the names in
    ``sys.modules`` to ``dump`` when the process ends, ``os._exit`` included (``rivet``
    ends that way), so imports that failed can be told from modules loaded. It imports
    nothing the interpreter has not loaded already."""
    if command.rivet:
        return _WRAPPER.format(dump=str(dump), argv=[str(RIVET_BIN), *command.args],
                               script=str(RIVET_BIN), script_dir=str(RIVET_BIN.parent),
                               source="")
    return _WRAPPER.format(dump=str(dump), argv=["-c"], script="", script_dir="",
                           source=command.args[-1])


def _argv(command: Command, *, importtime_dump: Path | None = None) -> list[str]:
    if importtime_dump is not None:
        return [str(python_bin()), "-X", "importtime", "-c",
                importtime_wrapper(command, importtime_dump)]
    if command.rivet:
        return [str(RIVET_BIN), *command.args]
    return [str(python_bin()), *command.args]


def _env(command: Command) -> dict[str, str]:
    if command.config_db is None:
        return tools.child_env()
    return tools.child_env(**{rivetcfg.URL_ENV: command.config_db.url})


def _prepare(command: Command, run_dir: Path, table: Table) -> None:
    run_dir.mkdir(parents=True)
    if command.config_db is not None:
        config = rivetcfg.render_config(rivetcfg.VARIANTS["rivet"], command.config_db, table,
                                        "parquet")
        (run_dir / "rivet.toml").write_text(config)


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return report.error_text("\n".join(line for line in text.splitlines()
                                       if not line.startswith("import time:")), limit=600)


def _start(command: Command, run_dir: Path, table: Table, timeout_s: float,
           *, importtime: bool = False) -> dict[str, Any]:
    """Start ``command`` once in a fresh ``run_dir``; its figures and status."""
    _prepare(command, run_dir, table)
    stdout, stderr = run_dir / "stdout.log", run_dir / "stderr.log"
    dump = run_dir / "sys-modules.txt" if importtime else None
    result = run_child(_argv(command, importtime_dump=dump), _env(command), cwd=run_dir,
                       stdout_path=stdout, stderr_path=stderr, timeout_s=timeout_s)
    record: dict[str, Any] = {"wall_s": result.wall_s, "max_rss_mb": result.max_rss_mb,
                              "cpu_s": result.user_s + result.sys_s,
                              "returncode": result.returncode, "rss_source": result.rss_source,
                              "status": report.OK, "error": None}
    if result.timed_out:
        record.update(status="TIMEOUT", error=f"killed after {timeout_s:.0f}s")
    elif result.returncode != 0:
        record.update(status="FAILED", error=_tail(stderr) or _tail(stdout)
                      or f"exit code {result.returncode}")
    elif command.expected_rows is not None:
        output = read_back(run_dir / "out")
        record["rows_verified"] = output.rows
        if output.error or output.rows != command.expected_rows:
            record.update(status="FAILED-VERIFY", error=output.error or
                          f"the files hold {output.rows} rows; the table has "
                          f"{command.expected_rows}")
    if dump is not None:
        loaded = set(dump.read_text().split()) if dump.exists() else None
        record["importtime"] = report.parse_importtime(
            stderr.read_text(errors="replace") if stderr.exists() else "", loaded)
        if loaded is None:
            record["importtime"]["note"] = "sys.modules not written: failed imports counted"
    return record


def run(args: argparse.Namespace, dbs: list[Database], table: Table,
        expected: dict[tuple[str, str], int], work_dir: Path, log: Log) -> list[dict[str, Any]]:
    """Every command ``args.runs`` times (alternating) and once under ``-X importtime``."""
    chosen = commands(dbs, table, expected)
    records: list[dict[str, Any]] = [
        {"command": c.label, "argv": _argv(c), "runs": [], "importtime": None}
        for c in chosen]

    def run_dir(name: str, index: int) -> Path:
        return work_dir / f"startup-{index:02d}-{name}"

    def finish(path: Path) -> None:
        if not args.keep_output:
            shutil.rmtree(path, ignore_errors=True)

    if not args.no_warmup:
        for index, command in enumerate(chosen):
            path = run_dir("warmup", index)
            _start(command, path, table, args.timeout)
            finish(path)
    for run in range(1, args.runs + 1):
        shift = (run - 1) % len(chosen)
        order = list(range(len(chosen)))
        for index in order[shift:] + order[:shift]:
            path = run_dir(f"run{run}", index)
            result = _start(chosen[index], path, table, args.timeout)
            records[index]["runs"].append(result)
            finish(path)
            log(f"[startup run {run}] {chosen[index].label}: {result['status']} "
                f"{result['wall_s'] * 1000:.0f} ms, rss {result['max_rss_mb']:.0f} MB")
    for index, command in enumerate(chosen):
        path = run_dir("importtime", index)
        result = _start(command, path, table, args.timeout, importtime=True)
        records[index]["importtime"] = result["importtime"]
        records[index]["importtime_wall_s"] = result["wall_s"]
        if result["status"] != report.OK:
            records[index]["error"] = f"the -X importtime run failed: {result['error']}"
        finish(path)
        profile = result["importtime"]
        log(f"[startup importtime] {command.label}: {profile['modules']} modules, "
            f"{profile['import_ms']:.0f} ms")
    return records
