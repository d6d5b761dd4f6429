"""Seeding: create the benchmark databases and fill the fixture tables, only when needed.

A table is left alone when ``bench_meta`` records it with the current fixture version and
row count and the table exists; otherwise it is dropped, created, filled batch by batch,
given its primary key and analysed. Runs with the product's virtualenv (psycopg, pymysql).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql

from rivetbench.fixtures import (
    MYSQL_SESSION,
    Table,
    batches,
    fixture_version,
    mysql_create,
    mysql_fill,
    mysql_finish,
    pg_create,
    pg_fill,
    pg_finish,
)
from rivetbench.settings import Database

Log = Callable[[str], None]

_META_PG = """CREATE TABLE IF NOT EXISTS bench_meta (
    name text PRIMARY KEY, version text NOT NULL, rows bigint NOT NULL,
    seeded_at timestamptz NOT NULL DEFAULT now(), seed_seconds double precision)"""
_META_MY = """CREATE TABLE IF NOT EXISTS bench_meta (
    name VARCHAR(64) PRIMARY KEY, version VARCHAR(32) NOT NULL, `rows` BIGINT NOT NULL,
    seeded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, seed_seconds DOUBLE)"""


@contextlib.contextmanager
def pg_connect(db: Database, *, database: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(host=db.host, port=db.port, user=db.user, password=db.password or None,
                           dbname=database or db.database, autocommit=True,
                           application_name="rivetbench")
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def mysql_connect(db: Database, *, database: str | None = None
                  ) -> Iterator[pymysql.connections.Connection]:  # type: ignore[type-arg]
    conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password,
                           database=database, autocommit=True, charset="utf8mb4")
    try:
        yield conn
    finally:
        conn.close()


def ensure_database(db: Database) -> None:
    """Create the benchmark database when it does not exist."""
    if db.kind == "pg":
        with pg_connect(db, database="postgres") as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (db.database,)).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{db.database}"')
    else:
        with mysql_connect(db) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db.database}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")


def _pg_is_current(conn: psycopg.Connection[Any], table: Table) -> bool:
    conn.execute(_META_PG)
    row = conn.execute("SELECT version, rows FROM bench_meta WHERE name = %s",
                       (table.name,)).fetchone()
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                          (f"public.{table.name}",)).fetchone()
    return bool(row and exists and exists[0]
                and row[0] == fixture_version(table.kind) and row[1] == table.rows)


def _my_is_current(cur: Any, db: Database, table: Table) -> bool:
    cur.execute(_META_MY)
    cur.execute("SELECT version, `rows` FROM bench_meta WHERE name = %s", (table.name,))
    row = cur.fetchone()
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db.database, table.name))
    exists = cur.fetchone()[0]
    return bool(row and exists and row[0] == fixture_version(table.kind)
                and row[1] == table.rows)


def seed_table(db: Database, table: Table, log: Log, *, force: bool = False) -> float | None:
    """Seed ``table`` if it is missing or stale; the seconds it took, or None if current."""
    if db.kind == "pg":
        with pg_connect(db) as conn:
            if not force and _pg_is_current(conn, table):
                return None
            started = time.perf_counter()
            log(f"seeding {db.kind}.{table.name} ({table.rows:,} rows)")
            conn.execute("DELETE FROM bench_meta WHERE name = %s", (table.name,))
            for statement in pg_create(table):
                conn.execute(statement)
            for lo, hi in batches(table):
                conn.execute(pg_fill(table, lo, hi))
                log(f"  {db.kind}.{table.name}: {hi:,} rows ({time.perf_counter() - started:.0f}s)")
            for statement in pg_finish(table):
                conn.execute(statement)
            conn.execute(f"VACUUM ANALYZE {table.name}")
            seconds = time.perf_counter() - started
            conn.execute("INSERT INTO bench_meta (name, version, rows, seed_seconds) "
                         "VALUES (%s, %s, %s, %s)",
                         (table.name, fixture_version(table.kind), table.rows, seconds))
    else:
        with mysql_connect(db, database=db.database) as conn, conn.cursor() as cur:
            if not force and _my_is_current(cur, db, table):
                return None
            started = time.perf_counter()
            log(f"seeding {db.kind}.{table.name} ({table.rows:,} rows)")
            cur.execute("DELETE FROM bench_meta WHERE name = %s", (table.name,))
            for statement in MYSQL_SESSION:
                cur.execute(statement)
            for statement in mysql_create(table):
                cur.execute(statement)
            for lo, hi in batches(table):
                cur.execute(mysql_fill(table, lo, hi))
                log(f"  {db.kind}.{table.name}: {hi:,} rows ({time.perf_counter() - started:.0f}s)")
            for statement in mysql_finish(table):
                cur.execute(statement)
                if cur.description:
                    cur.fetchall()
            seconds = time.perf_counter() - started
            cur.execute("INSERT INTO bench_meta (name, version, `rows`, seed_seconds) "
                        "VALUES (%s, %s, %s, %s)",
                        (table.name, fixture_version(table.kind), table.rows, seconds))
    log(f"seeded {db.kind}.{table.name} in {seconds:.1f}s")
    return seconds


def count_rows(db: Database, table: Table) -> int:
    """``COUNT(*)`` of a fixture table: the number every output is checked against."""
    if db.kind == "pg":
        with pg_connect(db) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()
            return int(row[0]) if row else 0
    with mysql_connect(db, database=db.database) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table.name}")
        return int(cur.fetchone()[0])
