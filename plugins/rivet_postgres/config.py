"""``[source]`` keys of the postgres source: the shared connection keys plus PostgreSQL's own."""

from __future__ import annotations

from typing import Literal

import attrs

from rivet_core.api import ConnectionConfig, doc


@attrs.frozen(kw_only=True)
class PostgresConfig(ConnectionConfig):
    """``[source]`` with ``type = "postgres"``."""

    application_name: str = doc(
        "Name the connection shows in `pg_stat_activity`, so a DBA can tell Rivet's sessions "
        "apart. An `application_name` in the URL wins.",
        default="rivet",
    )
    connect_timeout_s: int = doc(
        "Seconds to wait for a connection before failing (a transient error, retried). "
        "0 waits forever. A `connect_timeout` in the URL wins.",
        default=10,
    )
    read_path: Literal["auto", "copy", "cursor"] = doc(
        "How rows are read. `auto`: binary COPY decoded into Arrow in C (in "
        "ctid ranges over `parallel` connections for a `table` export), falling back to "
        "the server-side cursor when COPY cannot serve the query; the run summary says "
        "which path was taken and why. `copy`: COPY or fail. `cursor`: always the psycopg "
        "server-side cursor (FETCH per batch).",
        default="auto",
    )
