"""Measuring one run: the child process's wall time and rusage, and what the server saw.

:func:`run_child` starts the tool as its own process (own session, so a timeout kills the
whole group), waits for it with ``os.wait4`` and keeps user and system CPU seconds and
``ru_maxrss``. On Linux a waited child's ``ru_maxrss`` is the largest resident set of the
child *or of any descendant it waited for*, not their sum; and it is never below the size of
the process that forked it, because the memory a child had before ``exec`` counts. Forked
from the harness (a few hundred MB once pyarrow is loaded) every tool would seem that big,
so when GNU time (``/usr/bin/time``, Debian package ``time``) is installed the tool is
started through it and its ``%M %U %S`` are used: its floor is about 1 MB. Without it the
harness falls back to its own ``wait4`` figures and records ``rss_source = "wait4"``.

:class:`Sampler` polls the server every ``interval`` seconds from its own connection while
the child runs, and keeps the maximum, over the run, of:

- ``longest_statement_s``: the age of the oldest running statement of a session connected to
  the benchmark database (PostgreSQL: ``clock_timestamp() - query_start`` of ``active``
  backends; MariaDB: ``PROCESSLIST.TIME_MS`` of ``Query``/``Execute`` commands);
- ``longest_xact_s`` (PostgreSQL only): the age of the oldest open transaction, i.e. how long
  a snapshot was held;
- ``max_backends``: sessions connected to the benchmark database at once.

Sessions that were already connected when the sampler started (the sampler's own, the
harness's, anyone else's) are left out: only sessions the tool opened count. A statement
shorter than the interval may be missed, and each maximum is low by up to one interval.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rivetbench.settings import Database

# One row per session: id, age of its running statement (NULL when idle), age of its open
# transaction (NULL when none; PostgreSQL only).
_PG_SAMPLE = """
SELECT pid,
       CASE WHEN state = 'active' THEN extract(epoch FROM clock_timestamp() - query_start) END,
       extract(epoch FROM clock_timestamp() - xact_start)
FROM pg_stat_activity
WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"""

_MY_SAMPLE = """
SELECT ID, IF(COMMAND IN ('Query', 'Execute'), TIME_MS / 1000, NULL), NULL
FROM information_schema.PROCESSLIST
WHERE ID <> CONNECTION_ID() AND DB = %s"""


GNU_TIME = Path("/usr/bin/time")
_TIME_FORMAT = "rivetbench %U %S %M"


@dataclass
class ChildResult:
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    timed_out: bool
    rss_source: str
    """``time`` (GNU time's figures for the tool alone) or ``wait4`` (includes the fork)."""


def _gnu_time_figures(path: Path) -> tuple[float, float, float] | None:
    """``(user_s, sys_s, max_rss_kb)`` from GNU time's output file, if it wrote one."""
    if not path.exists():
        return None
    for line in reversed(path.read_text(errors="replace").splitlines()):
        parts = line.split()
        if len(parts) == 4 and parts[0] == "rivetbench":
            return float(parts[1]), float(parts[2]), float(parts[3])
    return None


def run_child(argv: list[str], env: dict[str, str], *, cwd: Path, stdout_path: Path | None,
              stderr_path: Path, timeout_s: float) -> ChildResult:
    """Run ``argv`` to its end (or until ``timeout_s``), measured."""
    timed_out = threading.Event()
    time_file = stderr_path.with_name(stderr_path.name + ".rusage")
    use_time = GNU_TIME.exists()
    if use_time:
        argv = [str(GNU_TIME), "-o", str(time_file), "-f", _TIME_FORMAT, "--", *argv]
    with open(stderr_path, "wb") as err, \
            (open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb")) as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    # Popen must not wait again for a pid that is gone.
    proc.returncode = os.waitstatus_to_exitcode(status)
    figures = _gnu_time_figures(time_file) if use_time else None
    if figures is not None:
        user_s, sys_s, rss_kb = figures
        source = "time"
    else:
        user_s, sys_s, rss_kb = usage.ru_utime, usage.ru_stime, float(usage.ru_maxrss)
        source = "wait4"
    return ChildResult(
        returncode=proc.returncode, wall_s=wall, user_s=user_s, sys_s=sys_s,
        max_rss_mb=rss_kb / 1024, timed_out=timed_out.is_set(), rss_source=source)


class Sampler(threading.Thread):
    """Polls the server while a run is going on. ``start()``, run the child, ``stop()``."""

    def __init__(self, db: Database, *, interval_s: float = 0.05) -> None:
        super().__init__(name="rivetbench-sampler", daemon=True)
        self.db = db
        self.interval_s = interval_s
        self.longest_statement_s = 0.0
        self.longest_xact_s: float | None = 0.0 if db.kind == "pg" else None
        self.max_backends = 0
        self.samples = 0
        self.error: str | None = None
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self._before: set[int] | None = None

    def _connect(self) -> Any:
        if self.db.kind == "pg":
            import psycopg
            return psycopg.connect(host=self.db.host, port=self.db.port, user=self.db.user,
                                   password=self.db.password or None, dbname="postgres",
                                   autocommit=True, application_name="rivetbench-sampler")
        import pymysql
        return pymysql.connect(host=self.db.host, port=self.db.port, user=self.db.user,
                               password=self.db.password, autocommit=True)

    def _sessions(self, conn: Any) -> list[tuple[int, float | None, float | None]]:
        if self.db.kind == "pg":
            rows = conn.execute(_PG_SAMPLE, (self.db.database,)).fetchall()
        else:
            with conn.cursor() as cur:
                cur.execute(_MY_SAMPLE, (self.db.database,))
                rows = cur.fetchall()
        return [(int(pid), None if stmt is None else float(stmt),
                 None if xact is None else float(xact)) for pid, stmt, xact in rows]

    def _sample(self, conn: Any) -> None:
        sessions = [s for s in self._sessions(conn) if s[0] not in (self._before or set())]
        self.max_backends = max(self.max_backends, len(sessions))
        for _, statement, xact in sessions:
            if statement is not None:
                self.longest_statement_s = max(self.longest_statement_s, statement)
            if xact is not None and self.longest_xact_s is not None:
                self.longest_xact_s = max(self.longest_xact_s, xact)
        self.samples += 1

    def run(self) -> None:
        try:
            conn = self._connect()
        except Exception as exc:  # reported with the run, never fatal to it
            self.error = f"sampler could not connect: {exc}"
            self._ready.set()
            return
        try:
            self._before = {pid for pid, _, _ in self._sessions(conn)}
        except Exception as exc:
            self.error = f"sampler failed: {exc}"
        self._ready.set()
        try:
            while not self._stop_event.is_set():
                self._sample(conn)
                self._stop_event.wait(self.interval_s)
        except Exception as exc:
            self.error = f"sampler failed: {exc}"
        finally:
            conn.close()

    def start(self) -> None:
        super().start()
        self._ready.wait(timeout=10)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
