"""The PostgreSQL state backend: one schema (``[state] schema``, default ``rivet``) that the
runs of many machines share.

- **Migrations**: :data:`~rivet_core.state.migrations.PG_MIGRATIONS`, recorded in
  ``rivet_schema_version``, applied on connect under a transaction-scoped advisory lock so
  processes starting at once migrate once. A store at the current version needs no DDL
  privilege.
- **Transactions**: each :meth:`PostgresStateStore.transaction` is one database transaction
  (READ COMMITTED) on the store's connection; the threads of one process take turns on it.
- **Run locks**: a session-level advisory lock (``pg_try_advisory_lock``, keyed by schema
  and export) on a connection of their own, plus a ``locks`` row naming the holder's run,
  host and pid for people to read. The server holds the lock exactly as long as that
  session lives, so a process that dies (``kill -9``, a lost machine: TCP keepalives end
  its session within about a minute) frees it with no clean-up, on any host. Liveness is
  read from ``pg_locks``. Before every transaction of a process that holds locks, their
  connection is checked: once it is lost, the locks may be someone else's, and every
  further write fails instead of racing that run.
- **Chunk claims**: one ``UPDATE … WHERE idx = (SELECT … FOR UPDATE SKIP LOCKED)``, so
  claimants in many processes never get the same task and never wait for each other.

The URL's password never appears in a message, a log line or ``rivet state`` output: every
message is redacted, and the password is registered as a secret when the URL is read. A URL
that reaches past this machine without requiring TLS is warned about once per process.
Not here: which backend a project uses (:mod:`rivet_core.state.backend`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rivet_core.errors import StateError
from rivet_core.redact import redact, register_secret
from rivet_core.state.backend import warn_once
from rivet_core.state.base import StateNotFound
from rivet_core.state.migrations import PG_MIGRATIONS
from rivet_core.state.records import (
    STATE_TABLES,
    ChunkTask,
    LockRecord,
    RunRecord,
    iso,
    utc_now,
)
from rivet_core.state.sql import TASK_COLUMNS, SqlStateStore, SqlStateTx, task

VERSION_TABLE = "rivet_schema_version"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ENCRYPTED_MODES = frozenset({"require", "verify-ca", "verify-full"})
CONNECT_DEFAULTS = {"connect_timeout": "10", "application_name": "rivet state"}
"""libpq settings a URL may override."""
LOCK_SESSION_DEFAULTS = {"keepalives": "1", "keepalives_idle": "30",
                         "keepalives_interval": "10", "keepalives_count": "3"}
"""The client side of noticing a dead lock session; the server side is set per session
(:data:`LOCK_SESSION_SETTINGS`), since only the server can free the lock."""
LOCK_SESSION_SETTINGS = (("tcp_keepalives_idle", "30"), ("tcp_keepalives_interval", "10"),
                         ("tcp_keepalives_count", "3"), ("idle_session_timeout", "0"))


def lock_key(schema: str, name: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of export ``name`` in ``schema``.
    Two names sharing a key would only make one wait for the other's run (odds 2**-64)."""
    digest = hashlib.blake2b(f"rivet-state\0{schema}\0{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def lock_ids(key: int) -> tuple[int, int]:
    """``pg_locks``' ``classid`` and ``objid`` of a 64-bit advisory lock key."""
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


@functools.cache
def _pg(statement: str) -> str:
    """A statement of :mod:`rivet_core.state.sql` in psycopg's parameter style."""
    return statement.replace("?", "%s")


def exposed(params: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a connection with libpq ``params`` may cross a network unencrypted: a host
    other than this machine (a name, an address, not a socket directory) and no ``sslmode``
    that requires TLS."""
    hosts = str(params.get("host") or environ.get("PGHOST") or "")
    addresses = str(params.get("hostaddr") or environ.get("PGHOSTADDR") or "")
    remote = [h for h in [*hosts.split(","), *addresses.split(",")]
              if h and not h.startswith(("/", "@")) and h not in LOCAL_HOSTS]
    mode = str(params.get("sslmode") or environ.get("PGSSLMODE") or "prefer")
    return bool(remote) and mode not in ENCRYPTED_MODES


def state_error(location: str, exc: psycopg.Error) -> StateError:
    """What a PostgreSQL failure means for the state store at ``location``."""
    text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StateError(
            f"state database {location}: permission denied ({text})",
            hint="the state role needs CREATE on the database (or on the schema) the first "
                 "time, then SELECT, INSERT, UPDATE, DELETE on the schema's tables; see "
                 "docs/state.md")
    if isinstance(exc, psycopg.OperationalError):
        return StateError(
            f"state database {location} is unreachable ({text})",
            hint="check the URL ([state] url, url_env or RIVET_STATE_URL) and that the "
                 "server accepts connections from here; nothing was recorded")
    return StateError(f"state database {location}: {text}")


class PostgresStateTx(SqlStateTx):
    """The write operations, all inside one open PostgreSQL transaction."""

    db: psycopg.Connection[Any]
    ROW_LOCK = " FOR UPDATE"

    def __init__(self, db: psycopg.Connection[Any], store: PostgresStateStore) -> None:
        super().__init__(db)
        self.store = store
        self.acquired: list[str] = []
        self.released: list[str] = []

    def _sql(self, statement: str) -> str:
        return _pg(statement)

    def _text(self, value: str) -> str:
        # PostgreSQL text cannot hold NUL; SQLite can.
        return value.replace("\x00", "\N{REPLACEMENT CHARACTER}")

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.db.cursor() as cursor:
            cursor.executemany(_pg(statement), list(rows))

    def record_run(self, record: RunRecord) -> None:
        # A new seq: a re-recorded run sorts as the newest of its instant, as in SQLite.
        self.execute(
            "INSERT INTO runs (run_id, export_name, mode, status, started_at, finished_at, "
            "rows, files, bytes, duration_ms, peak_rss_mb, retries, error, tool_version) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO UPDATE SET "
            "export_name = excluded.export_name, mode = excluded.mode, "
            "status = excluded.status, started_at = excluded.started_at, "
            "finished_at = excluded.finished_at, rows = excluded.rows, "
            "files = excluded.files, bytes = excluded.bytes, "
            "duration_ms = excluded.duration_ms, peak_rss_mb = excluded.peak_rss_mb, "
            "retries = excluded.retries, error = excluded.error, "
            "tool_version = excluded.tool_version, seq = DEFAULT",
            (record.run_id, record.export_name, record.mode, record.status,
             record.started_at, record.finished_at, record.rows, record.files,
             record.bytes, record.duration_ms, record.peak_rss_mb, record.retries,
             self._text(redact(record.error)) if record.error else None,
             record.tool_version),
        )

    def claim_chunk(self, run_id: str, max_attempts: int,
                    skip: Collection[int] = ()) -> ChunkTask | None:
        # SKIP LOCKED: a task another transaction is claiming is passed over, not waited
        # for; the row lock then makes the claim this transaction's alone.
        row = self.execute(
            "UPDATE chunk_tasks SET status = 'running', attempts = attempts + 1, "
            "updated_at = ? WHERE run_id = ? AND idx = (SELECT idx FROM chunk_tasks "
            f"WHERE run_id = ? AND {self.claimable(skip)} ORDER BY idx LIMIT 1 "
            f"FOR UPDATE SKIP LOCKED) RETURNING {TASK_COLUMNS}",
            (iso(utc_now()), run_id, run_id, max_attempts)).fetchone()
        return task(row) if row is not None else None

    # ------------------------------------------------------------------------- locks

    def _holder(self, export_name: str) -> LockRecord:
        recorded = self.recorded_lock(export_name)
        if recorded is not None:
            return recorded
        # Locked, but its row is not committed yet (the holder is taking it right now).
        return LockRecord(export_name=export_name, run_id="(starting)", pid=0,
                          host="(unknown)", acquired_at=iso(utc_now()))

    def live_lock(self, export_name: str) -> LockRecord | None:
        if self.store.holds(export_name) or self.store.locked_elsewhere(self.db, export_name):
            return self._holder(export_name)
        return None

    def acquire_lock(self, export_name: str, run_id: str) -> LockRecord | None:
        if self.store.holds(export_name) or not self.store.try_lock(export_name, run_id):
            return self._holder(export_name)
        self.acquired.append(export_name)
        self.execute("DELETE FROM locks WHERE export_name = ?", (export_name,))
        self.execute(
            "INSERT INTO locks (export_name, run_id, pid, host, acquired_at) "
            "VALUES (?,?,?,?,?)",
            (export_name, run_id, os.getpid(), socket.gethostname(), iso(utc_now())))
        return None

    def release_lock(self, export_name: str, run_id: str) -> None:
        self.execute("DELETE FROM locks WHERE export_name = ? AND run_id = ?",
                     (export_name, run_id))
        if self.store.holds(export_name, run_id):
            self.released.append(export_name)

    # ---------------------------------------------------------------- whole-store copy

    def load(self, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
        count = super().load(table, rows)
        if table in ("files", "journal"):
            # Rows came with their ids: the next id the table hands out follows them.
            self.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)")
        return count


class PostgresStateStore(SqlStateStore):
    """Durable state in a PostgreSQL schema. ``create=False``: :class:`StateNotFound` if
    the schema holds no state yet, instead of creating it; ``migrate=False``: a store at an
    older version is refused instead of migrated (for readers that must change nothing).

    Every failure surfaces as a :class:`~rivet_core.errors.StateError` naming the server
    (password masked) with a hint; the transaction it interrupted is rolled back."""

    backend: ClassVar[str] = "postgresql"
    sees_remote_holders: ClassVar[bool] = True
    RUN_ORDER: ClassVar[str] = "seq"

    def __init__(self, url: str, schema: str = "rivet", *, create: bool = True,
                 migrate: bool = True) -> None:
        super().__init__()
        self.url = url
        self.schema = schema
        try:
            self.params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StateError(f"state database URL {redact(url)} is not valid: "
                             f"{redact(str(exc))}") from None
        register_secret(str(self.params.get("password") or ""))
        self._location = f"{redact(url)} (schema {schema})"
        if exposed(self.params):
            warn_once(f"state database {redact(url)} is on another machine and its URL does "
                      "not require TLS: add sslmode=verify-full (or require) to it")
        self._conn: psycopg.Connection[Any] | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._held: dict[str, tuple[int, str]] = {}
        """Export → (advisory key, run id) of every run lock this store holds."""
        try:
            self._migrate(create=create, migrate=migrate)
        except psycopg.Error as exc:
            self.close()
            raise state_error(self._location, exc) from None
        except BaseException:
            self.close()
            raise

    @property
    def location(self) -> str:
        return self._location

    # ------------------------------------------------------------------ connections

    def _connect(self, **extra: str) -> psycopg.Connection[Any]:
        settings = {k: v for k, v in {**CONNECT_DEFAULTS, **extra}.items()
                    if k not in self.params}
        conn = psycopg.connect(make_conninfo(self.url, **settings), autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        """The store's connection, opened again if the last one was lost (only between
        transactions: a transaction never outlives its connection)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _lock_connection(self) -> psycopg.Connection[Any]:
        if self._lock_conn is None or self._lock_conn.closed:
            conn = self._connect(**LOCK_SESSION_DEFAULTS)
            for name, value in LOCK_SESSION_SETTINGS:
                # Unknown to an older server, or over a Unix socket: nothing to set.
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT set_config(%s, %s, false)", (name, value))
            self._lock_conn = conn
        return self._lock_conn

    # ------------------------------------------------------------------- migrations

    def _version(self, conn: psycopg.Connection[Any]) -> int | None:
        found = conn.execute("SELECT to_regclass(quote_ident(%s) || '.' || %s)",
                             (self.schema, VERSION_TABLE)).fetchone()
        if found is None or found[0] is None:
            return None
        row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {VERSION_TABLE}").fetchone()
        return int(row[0]) if row else 0

    def _check_version(self, version: int) -> None:
        if version > len(PG_MIGRATIONS):
            raise StateError(
                f"state database {self._location} has schema version {version}, newer than "
                f"this Rivet understands ({len(PG_MIGRATIONS)})", hint="upgrade rivet-cli")

    def _migrate(self, *, create: bool, migrate: bool) -> None:
        conn = self._connection()
        version = self._version(conn)
        if version is not None:
            self._check_version(version)
            if version == len(PG_MIGRATIONS):
                return
        if version is None and not create:
            raise StateNotFound(f"state database {self._location} holds no Rivet state")
        if not migrate:
            raise StateError(
                f"state database {self._location} is at schema version {version}, older than "
                f"this Rivet's ({len(PG_MIGRATIONS)})",
                hint="any command that writes state (`rivet run`) migrates it")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)",
                         (lock_key(self.schema, "\0migrations"),))
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                  (self.schema,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY "
                         "KEY, applied_at TEXT NOT NULL, tool_version TEXT NOT NULL)")
            version = self._version(conn) or 0
            self._check_version(version)
            from rivet_core import __version__

            for number, script in enumerate(PG_MIGRATIONS[version:], start=version + 1):
                for statement in (s.strip() for s in script.split(";")):
                    if statement:
                        conn.execute(statement)
                conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (%s, %s, %s)",
                             (number, iso(utc_now()), __version__))

    @property
    def schema_version(self) -> int:
        return int(self._query(f"SELECT MAX(version) FROM {VERSION_TABLE}")[0][0])

    # ------------------------------------------------------------ transactions, reads

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PostgresStateTx]:
        with self._lock:
            self._check_lock_session()
            try:
                conn = self._connection()
            except psycopg.Error as exc:
                raise state_error(self._location, exc) from None
            tx = PostgresStateTx(conn, self)
            try:
                with conn.transaction():
                    yield tx
            except BaseException as exc:
                for name in tx.acquired:
                    self.unlock(name)
                if isinstance(exc, psycopg.Error):
                    raise state_error(self._location, exc) from None
                raise
            for name in tx.released:
                self.unlock(name)

    def _query(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(_pg(statement), args).fetchall()
            except psycopg.Error as exc:
                raise state_error(self._location, exc) from None

    # ------------------------------------------------------------------------- locks

    def holds(self, export_name: str, run_id: str | None = None) -> bool:
        """Whether this store holds the export's run lock (for ``run_id``, if given)."""
        held = self._held.get(export_name)
        return held is not None and (run_id is None or held[1] == run_id)

    def try_lock(self, export_name: str, run_id: str) -> bool:
        key = lock_key(self.schema, export_name)
        row = self._lock_connection().execute("SELECT pg_try_advisory_lock(%s)",
                                              (key,)).fetchone()
        if row is None or not row[0]:
            return False
        self._held[export_name] = (key, run_id)
        return True

    def unlock(self, export_name: str) -> None:
        held = self._held.pop(export_name, None)
        if held is not None and self._lock_conn is not None:
            # A lost session has freed it already.
            with contextlib.suppress(psycopg.Error):
                self._lock_conn.execute("SELECT pg_advisory_unlock(%s)", (held[0],))

    def locked_elsewhere(self, conn: psycopg.Connection[Any], export_name: str) -> bool:
        """Whether some session holds the export's advisory lock."""
        classid, objid = lock_ids(lock_key(self.schema, export_name))
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1)",
            (classid, objid)).fetchone()
        return bool(row and row[0])

    def _check_lock_session(self) -> None:
        """Refuse to go on once the session holding this process's run locks is gone: the
        server freed them, and another run may hold them now."""
        if not self._held or self._lock_conn is None:
            return
        try:
            self._lock_conn.execute("SELECT 1")
            return
        except psycopg.Error as exc:
            lost = ", ".join(sorted(self._held))
            reason = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
        self._held.clear()
        with contextlib.suppress(psycopg.Error):
            self._lock_conn.close()
        raise StateError(
            f"state database {self._location}: the connection holding the run lock of "
            f"{lost} was lost ({reason}); another run may hold it now, so nothing more is "
            "recorded", hint="run the export again once the database is reachable")

    # ---------------------------------------------------------------------- lifecycle

    def counts(self) -> dict[str, int]:
        row = self._query("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {table})"
                                                for table in STATE_TABLES))[0]
        return {table: int(count) for table, count in zip(STATE_TABLES, row, strict=True)}

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            for conn in (self._lock_conn, self._conn):
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
            self._lock_conn = self._conn = None
