"""The source conformance kit against the built-in ``postgres`` and ``mysql`` sources.

The back doors are connections of the test's own (psycopg, pymysql), never the sources
under test: they create the sample, count the sources' server sessions and know nothing of
the plugins' code. Each test works in a table of its own, in the session's PostgreSQL
schema or MariaDB database; the test counting the source's sessions tells them apart by an
application name of its own (PostgreSQL) or a database of its own (MariaDB).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from rivet_core.plugins import build_registry
from rivet_core.testing import SourceTests

COLUMNS = "id, name, amount, day, seen_at"


@functools.cache
def _spec(name: str) -> Any:
    """The built-in spec (loading every entry point again for each test costs time)."""
    return build_registry().sources[name].spec


def _mysql(url: str, database: str | None = None) -> Any:
    """An autocommit pymysql connection of the test's own to the server of ``url``."""
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=unquote(parts.username or ""),
                           password=unquote(parts.password or ""), database=database,
                           charset="utf8mb4", autocommit=True)


def _with_login(url: str, user: str, password: str, database: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, "", ""))


# ---------------------------------------------------------------------------- postgres


class TestPostgresSource(SourceTests):
    @pytest.fixture
    def source_spec(self):
        return _spec("postgres")

    @pytest.fixture
    def application_name(self) -> str:
        return f"rivet-kit-{uuid.uuid4().hex[:10]}"

    @pytest.fixture
    def source_config(self, pg_url: str, application_name: str) -> dict[str, Any]:
        return {"url": pg_url, "application_name": application_name}

    @pytest.fixture
    def sample_table(self, sample_rows, pg, pg_schema: str) -> str:
        name = f"{pg_schema}.kit_{uuid.uuid4().hex[:10]}"
        pg.execute(f"CREATE TABLE {name} (id integer PRIMARY KEY, name text, "
                   "amount numeric(12, 2), day date, seen_at timestamptz)")
        with pg.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {name} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                               sample_rows)
        return name

    @pytest.fixture
    def unsupported_query(self, sample_table: str) -> str:
        return f"SELECT id, point(id, id) AS spot FROM {sample_table}"

    @pytest.fixture
    def failing_query(self, sample_table: str) -> str:
        return f"SELECT id, 1 / (id - 150) AS ratio FROM {sample_table}"

    @pytest.fixture
    def wrong_password_config(self, pg_url: str) -> tuple[dict[str, Any], str]:
        # The test server trusts every local login, so a role that does not exist is the
        # refused login; the password still travels in the config.
        password = f"kit-secret-{uuid.uuid4().hex}"
        return {"url": _with_login(pg_url, "kit_no_such_role", password)}, password

    @pytest.fixture
    def open_sessions(self, pg, application_name: str) -> Callable[[], int]:
        def count() -> int:
            row = pg.execute("SELECT count(*) FROM pg_stat_activity "
                             "WHERE application_name = %s", (application_name,)).fetchone()
            return int(row[0])

        return count

    @pytest.fixture
    def slow_query(self) -> str:
        return "SELECT 1 AS done FROM pg_sleep(5)"


# ------------------------------------------------------------------------------- mysql


class TestMysqlSource(SourceTests):
    @pytest.fixture
    def source_spec(self):
        return _spec("mysql")

    @pytest.fixture
    def database(self, request: pytest.FixtureRequest, mysql_url: str) -> Iterator[str]:
        """The session's database; a database of its own for the test that counts the
        source's sessions (the sessions in it are the source's). Creating one for every
        test would cost seconds."""
        if "open_sessions" not in request.fixturenames:
            yield request.getfixturevalue("mysql_db")
            return
        name = f"rivet_k_{uuid.uuid4().hex[:10]}"
        with _mysql(mysql_url) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        try:
            yield name
        finally:
            with _mysql(mysql_url) as conn, conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    @pytest.fixture
    def backdoor(self, mysql_url: str, database: str) -> Iterator[Any]:
        # Instants are written as their UTC wall time into TIMESTAMP(6), which the server
        # then reads as an instant in this session's zone.
        with _mysql(mysql_url, database) as conn:
            with conn.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
            yield conn

    @pytest.fixture
    def source_config(self, mysql_url: str, database: str) -> dict[str, Any]:
        parts = urlsplit(mysql_url)
        return {"url": urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))}

    @pytest.fixture
    def sample_table(self, sample_rows, backdoor: Any, database: str) -> str:
        name = f"{database}.kit_{uuid.uuid4().hex[:10]}"
        rows = [(*row[:4], None if row[4] is None
                 else row[4].astimezone(dt.UTC).replace(tzinfo=None)) for row in sample_rows]
        with backdoor.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, name VARCHAR(100), "
                           "amount DECIMAL(12, 2), day DATE, seen_at TIMESTAMP(6) NULL)")
            cursor.executemany(f"INSERT INTO {name} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
                               rows)
        return name

    @pytest.fixture
    def unsupported_query(self, sample_table: str) -> str:
        return f"SELECT id, CAST(amount AS FLOAT) AS ratio FROM {sample_table}"

    @pytest.fixture
    def failing_query(self, sample_table: str) -> str:
        # MySQL turns a division by zero into NULL; a scalar subquery of many rows fails.
        return (f"SELECT s.id, (SELECT o.id FROM {sample_table} AS o WHERE s.id = 150) "
                f"AS twin FROM {sample_table} AS s")

    @pytest.fixture
    def wrong_password_config(self, mysql_url: str, database: str
                              ) -> tuple[dict[str, Any], str]:
        password = f"kit-secret-{uuid.uuid4().hex}"
        user = urlsplit(mysql_url).username or "root"
        return {"url": _with_login(mysql_url, user, password, database)}, password

    @pytest.fixture
    def open_sessions(self, backdoor: Any, database: str) -> Callable[[], int]:
        def count() -> int:
            with backdoor.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                               "WHERE DB = %s AND ID <> CONNECTION_ID()", (database,))
                return int(cursor.fetchone()[0])

        return count

    @pytest.fixture
    def slow_query(self) -> str:
        return "SELECT SLEEP(5) AS slept"
