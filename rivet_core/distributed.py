"""The task queue of distributed chunked runs: Procrastinate, in the state database.

What lives here is the queue and nothing else: the Procrastinate app on the PostgreSQL state
store (its tables and functions in the state schema, beside Rivet's own), the one task
(``rivet.chunk``: read one chunk of one run), enqueueing a run's chunks, and the worker loop
with its stalled-job watch. What a chunk job does is :mod:`rivet_core.runner.distributed`.

Procrastinate is an optional dependency (``pip install 'rivet-cli[distributed]'``), imported
only here and only when a distributed command runs, so ``rivet --version`` stays fast.

A worker killed mid-chunk stops sending heartbeats; every worker looks for jobs of workers
whose heartbeat is older than ``stalled_after`` seconds and hands them out again, so another
worker takes the chunk over (:meth:`~rivet_core.state.base.StateTx.claim_chunk_at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rivet_core.errors import PluginError, StateError, UsageError
from rivet_core.redact import redact

if TYPE_CHECKING:
    from procrastinate import App

    from rivet_core.runner.distributed import ChunkOutcome, StartedRun
    from rivet_core.state.backend import StateLocation

log = logging.getLogger("rivet.distributed")

QUEUE = "rivet"
TASK = "rivet.chunk"
INSTALL_HINT = ("pip install 'rivet-cli[distributed]' (or `rivet install procrastinate` "
                "into Rivet's own environment)")
SCHEMA_LOCK = "rivet-procrastinate-schema"


def require() -> None:
    """:class:`PluginError` naming the install command unless Procrastinate is
    importable."""
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        raise PluginError("distributed runs need the Procrastinate task queue, which is not "
                          "installed", hint=INSTALL_HINT) from None


def require_postgres(location: StateLocation) -> None:
    """:class:`UsageError` unless the project's state store is PostgreSQL: the queue and
    the chunk checkpoints every worker shares live there."""
    if location.backend != "postgresql":
        raise UsageError(
            "distributed runs need a PostgreSQL state store, which every worker reaches; "
            f"this project's state is the SQLite file {location.display()}",
            hint="set [state] url (or url_env) in the config, or RIVET_STATE_URL, to a "
                 "postgresql:// URL; `rivet state migrate` moves the existing state there "
                 "(docs/scale.md)")


def _conninfo(location: StateLocation) -> str:
    """The state URL, with the state schema first on the search path: Procrastinate's
    tables and functions are created and found there."""
    assert location.url is not None
    search_path = sql.Identifier(location.schema).as_string(None)
    return make_conninfo(location.url, options=f"-c search_path={search_path}",
                         application_name="rivet worker")


def ensure_schema(location: StateLocation) -> bool:
    """Create Procrastinate's tables and functions in the state schema unless they are
    there (under a lock, so workers starting together create them once). Whether they
    were created now."""
    from procrastinate.schema import SchemaManager

    try:
        with psycopg.connect(_conninfo(location), autocommit=True) as conn, \
                conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                         (f"{SCHEMA_LOCK}:{location.schema}",))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(location.schema)))
            found = conn.execute("SELECT to_regclass(quote_ident(%s) || '.procrastinate_jobs')",
                                 (location.schema,)).fetchone()
            if found is not None and found[0] is not None:
                return False
            conn.execute(SchemaManager.get_schema())  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise StateError(f"state database {location.display()}: could not set up the task "
                         f"queue: {redact(str(exc).strip().splitlines()[0])}",
                         hint="the first distributed run (or `rivet worker --init`) needs "
                              "CREATE on the state schema") from None
    log.info("task queue tables created in schema %s", location.schema)
    return True


def app(location: StateLocation) -> App:
    """The Procrastinate app on the state database."""
    from procrastinate import App, PsycopgConnector

    return App(connector=PsycopgConnector(conninfo=_conninfo(location), min_size=1,
                                          max_size=4))


def enqueue(location: StateLocation, started: StartedRun) -> int:
    """One job per chunk left to read; how many."""
    if not started.pending:
        return 0
    queue = app(location)
    with queue.open():
        deferrer = queue.configure_task(TASK, queue=QUEUE)
        jobs: list[dict[str, Any]] = [{"export": started.export, "run_id": started.run_id,
                                       "idx": idx, "column": started.column}
                                      for idx in started.pending]
        deferrer.batch_defer(*jobs)
    return len(started.pending)


class RetryChunk(Exception):
    """A chunk job to hand out again after ``delay`` seconds."""

    def __init__(self, delay: float, detail: str) -> None:
        super().__init__(detail)
        self.delay = delay


def _retry_strategy() -> Any:
    from procrastinate.retry import BaseRetryStrategy, RetryDecision

    class ChunkRetries(BaseRetryStrategy):  # type: ignore[misc]
        """Retry exactly the jobs :class:`RetryChunk` asks for; how many attempts a chunk
        gets is the state store's business (``chunk_max_attempts``)."""

        def get_retry_decision(self, *, exception: BaseException,
                               job: Any) -> RetryDecision | None:
            if isinstance(exception, RetryChunk):
                return RetryDecision(retry_in={"seconds": max(0, int(exception.delay))})
            return None

    return ChunkRetries()


def serve(location: StateLocation, run_chunk: Callable[[str, str, int, str], ChunkOutcome],
          *, concurrency: int, heartbeat: float, stalled_after: float,
          stop: threading.Event) -> None:
    """Run a worker until ``stop`` is set or SIGTERM/SIGINT arrive: up to ``concurrency``
    chunk jobs at once, each on a thread of its own. A signal stops fetching, sets
    ``stop`` (the chunks being read abort their open files and are handed out again), and
    returns once they have."""
    queue = app(location)

    @queue.task(name=TASK, queue=QUEUE, retry=_retry_strategy())
    def chunk(export: str, run_id: str, idx: int, column: str) -> str:
        outcome = run_chunk(export, run_id, idx, column)
        if outcome.status == "retry":
            raise RetryChunk(outcome.retry_in, outcome.detail)
        return f"{outcome.status}: {outcome.detail}" if outcome.detail else outcome.status

    asyncio.run(_serve(queue, concurrency=concurrency, heartbeat=heartbeat,
                       stalled_after=stalled_after, stop=stop))


async def _serve(queue: App, *, concurrency: int, heartbeat: float, stalled_after: float,
                 stop: threading.Event) -> None:
    from procrastinate.worker import Worker

    async with queue.open_async():
        worker = Worker(queue, queues=[QUEUE], concurrency=concurrency,
                        update_heartbeat_interval=heartbeat,
                        stalled_worker_timeout=stalled_after,
                        install_signal_handlers=False, shutdown_graceful_timeout=60.0,
                        delete_jobs="successful")

        def on_signal() -> None:
            if not stop.is_set():
                log.warning("signal received: aborting the chunks being read (other "
                            "workers take them over) and stopping")
            stop.set()
            worker.stop()

        loop = asyncio.get_running_loop()
        with _signals(loop, on_signal):
            watch = asyncio.create_task(_retry_stalled(queue, heartbeat, stalled_after))
            try:
                await worker.run()
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> Iterator[None]:
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _retry_stalled(queue: App, every: float, stalled_after: float) -> None:
    """Hand out again the jobs of workers whose heartbeat stopped (killed, or their machine
    gone). Every worker watches; a job two of them retry at once is retried once (the
    second finds it no longer running)."""
    while True:
        await asyncio.sleep(every)
        try:
            stalled = await queue.job_manager.get_stalled_jobs(
                queue=QUEUE, seconds_since_heartbeat=stalled_after)
            for job in stalled:
                try:
                    await queue.job_manager.retry_job(job)
                except Exception as exc:  # retried by another worker meanwhile
                    log.debug("stalled job %s: not retried here: %s", job.id, exc)
                    continue
                log.warning("job %s (%s) of a worker that stopped sending heartbeats is "
                            "handed out again", job.id, job.call_string)
        except Exception as exc:
            log.warning("could not look for stalled jobs: %s", redact(str(exc)))
