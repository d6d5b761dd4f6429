"""``[source]`` keys of the postgres source: the shared connection keys plus PostgreSQL's own."""

from __future__ import annotations

import attrs

from rivet_core.config.connection import ConnectionConfig
from rivet_core.config.models import doc


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
