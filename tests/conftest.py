"""Fixtures shared by every test: the real database servers, isolated per test session.

Each session works in its own PostgreSQL schema and its own MariaDB database (random
names), so several checkouts can run their suites against the same servers at once.
Connection URLs come from RIVET_TEST_PG_URL / RIVET_TEST_MYSQL_URL, defaulting to the
servers of the development machine and CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

pytest_plugins = ["rivet_core.testing"]

PG_URL = os.environ.get("RIVET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("RIVET_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


@pytest.fixture(scope="session")
def pg_url() -> str:
    return PG_URL


@pytest.fixture(scope="session")
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema for this test session, dropped at the end."""
    import psycopg

    name = f"rivet_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def pg(pg_url: str, pg_schema: str) -> Iterator[object]:
    """An autocommit psycopg connection whose search_path is the session schema."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        yield conn
