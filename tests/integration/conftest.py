"""Fixtures of the integration tests: ``cloud`` (an S3 or GCS test server with a fresh bucket,
as destination TOML; ``s3``, ``gcs`` and ``azure`` (Azurite, a fresh container) one each),
and ``database``, for tests that run the same scenario on PostgreSQL and MariaDB.

``database`` is parametrized over both servers; each gives a URL for configs, a way to run
SQL, a qualified table name inside this session's own schema/database, and the column types
the scenarios need.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from servers.clouds import S3_ENV, Cloud


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


@pytest.fixture(params=["s3", "gcs"])
def cloud(request) -> Cloud:
    return request.getfixturevalue(request.param)


@pytest.fixture
def s3(moto_endpoint, s3_bucket, monkeypatch) -> Cloud:
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    lines = (f'type = "s3"\nbucket = "{s3_bucket}"\nendpoint = "{moto_endpoint}"\n'
             'allow_http = true\nregion = "us-east-1"\npart_size = "5MB"\n'
             'access_key_env = "RIVET_T_S3_KEY"\nsecret_key_env = "RIVET_T_S3_SECRET"')
    return Cloud(kind="s3", endpoint=moto_endpoint, bucket=s3_bucket, destination=lines)


@pytest.fixture
def gcs(gcs_endpoint, gcs_bucket, gcs_credentials) -> Cloud:
    lines = (f'type = "gcs"\nbucket = "{gcs_bucket}"\nendpoint = "{gcs_endpoint}"\n'
             f'allow_http = true\npart_size = "5MB"\ncredentials_file = "{gcs_credentials}"')
    return Cloud(kind="gcs", endpoint=gcs_endpoint, bucket=gcs_bucket, destination=lines)


@pytest.fixture
def azure(azurite_endpoint, azure_container, monkeypatch) -> Cloud:
    from servers.azurite import AZURE_KEY_ENV, AzureCloud, azure_destination

    for name, value in AZURE_KEY_ENV.items():
        monkeypatch.setenv(name, value)
    return AzureCloud(kind="azure", endpoint=azurite_endpoint, bucket=azure_container,
                      destination=azure_destination(azurite_endpoint, azure_container))
