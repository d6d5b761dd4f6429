"""A database-neutral fixture for tests that run the same scenario on PostgreSQL and MariaDB.

``database`` is parametrized over both servers; each gives a URL for configs, a way to run
SQL, a qualified table name inside this session's own schema/database, and the column types
the scenarios need.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest


@attrs.define
class Database:
    kind: str
    url: str
    namespace: str
    _conn: Any

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        if self.kind == "postgres":
            cur = self._conn.execute(sql, params)
            return cur.fetchall() if cur.description else []
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.kind == "postgres":
            with self._conn.cursor() as cur:
                cur.executemany(sql, rows)
        else:
            with self._conn.cursor() as cur:
                cur.executemany(sql, rows)

    def table(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    def connect(self) -> Any:
        """A second, autocommit session on the same server (closed by the caller)."""
        if self.kind == "postgres":
            import psycopg

            return psycopg.connect(self.url, autocommit=True)
        import pymysql

        from rivet_core.config.connection import ConnectionParams

        params = ConnectionParams.from_url(self.url, default_port=3306)
        return pymysql.connect(host=params.host, port=params.port, user=params.user,
                               password=params.password or "", database=self.namespace,
                               autocommit=True, charset="utf8mb4")

    # Column types the scenarios use, spelled per server.
    @property
    def timestamptz(self) -> str:
        return "timestamptz" if self.kind == "postgres" else "TIMESTAMP(6) NULL"

    @property
    def timestamp(self) -> str:
        return "timestamp" if self.kind == "postgres" else "DATETIME(6)"

    @property
    def text(self) -> str:
        return "text" if self.kind == "postgres" else "VARCHAR(200)"

    def now_minus(self, seconds: int) -> str:
        """SQL for the server's current UTC time minus ``seconds``."""
        if self.kind == "postgres":
            return f"now() - interval '{seconds} seconds'"
        return f"UTC_TIMESTAMP(6) - INTERVAL {seconds} SECOND"


@pytest.fixture(params=["postgres", "mysql"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    if request.param == "postgres":
        import psycopg

        url = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("pg_schema")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            yield Database(kind="postgres", url=url, namespace=schema, conn=conn)
        return
    import pymysql

    from rivet_core.config.connection import ConnectionParams

    url = request.getfixturevalue("mysql_url")
    name = request.getfixturevalue("mysql_db")
    params = ConnectionParams.from_url(url, default_port=3306)
    conn = pymysql.connect(host=params.host, port=params.port, user=params.user,
                           password=params.password or "", database=name, autocommit=True,
                           charset="utf8mb4")
    try:
        yield Database(kind="mysql", url=url, namespace=name, conn=conn)
    finally:
        conn.close()
