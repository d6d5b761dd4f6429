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

pytest_plugins = ["rivet_core.testing", "pytester"]

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


# ------------------------------------------------------------------ object-store servers
# moto's S3 server, the suite's GCS XML-API server and Azurite (tests/servers), each its own
# process on 127.0.0.1, started once per session; each test gets its own bucket/container.


@pytest.fixture(autouse=True)
def _no_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up real cloud credentials or endpoints (and so reach a real
    provider or instance metadata) from the developer's environment."""
    from servers import CLOUD_ENV
    from servers.azurite import AZURE_ENV

    for name in list(os.environ):
        if CLOUD_ENV.match(name) or AZURE_ENV.match(name):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from servers import moto_server

    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from servers import gcs_server

    with gcs_server(tmp_path_factory.mktemp("gcs")) as url:
        yield url


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The account URL of an Azurite blob service (``.../devstoreaccount1``); the Azure
    tests skip, saying how to install it, where Azurite is not installed."""
    from servers.azurite import azurite_command, azurite_server, missing_reason

    if azurite_command() is None:
        pytest.skip(missing_reason())
    with azurite_server(tmp_path_factory.mktemp("azurite")) as url:
        yield url


@pytest.fixture
def azure_container(azurite_endpoint: str) -> str:
    from servers.azurite import new_container

    return new_container(azurite_endpoint)


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    from servers import new_bucket

    return new_bucket(moto_endpoint)


@pytest.fixture
def gcs_bucket(gcs_endpoint: str) -> str:
    from servers import new_bucket

    return new_bucket(gcs_endpoint)


@pytest.fixture
def gcs_credentials(gcs_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a service-account file pointing at the test GCS server (OAuth disabled)."""
    from servers import gcs_service_account

    return str(gcs_service_account(gcs_endpoint, tmp_path_factory.mktemp("gcs-sa")))


def _mysql_connect(url: str, database: str | None = None, **kwargs: object):
    """A pymysql connection to the server of ``url`` (default decoders, autocommit)."""
    from urllib.parse import unquote, urlsplit

    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname, port=parts.port or 3306, user=unquote(parts.username or ""),
        password=unquote(parts.password or ""), database=database, charset="utf8mb4",
        autocommit=True, **kwargs,
    )


@pytest.fixture(scope="session")
def mysql_url() -> str:
    return MYSQL_URL


@pytest.fixture(scope="session")
def mysql_db(mysql_url: str) -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"rivet_t_{uuid.uuid4().hex[:10]}"
    with _mysql_connect(mysql_url) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield name
    finally:
        with _mysql_connect(mysql_url) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def mysql_db_url(mysql_url: str, mysql_db: str) -> str:
    """The URL of the session database (what a `[source] url` names)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(mysql_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{mysql_db}", "", ""))


@pytest.fixture
def my(mysql_url: str, mysql_db: str) -> Iterator[object]:
    """An autocommit pymysql cursor in the session database, on a session whose time zone is
    +05:30 and whose sql_mode allows zero dates, so seeding exercises the traps a source must
    not fall into."""
    with _mysql_connect(mysql_url, mysql_db) as conn, conn.cursor() as cursor:
        cursor.execute("SET time_zone = '+05:30', sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        yield cursor
