"""``[source]`` keys of the mysql source: the shared connection keys plus MySQL's own."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from rivet_core.api import ConnectionConfig, doc


@attrs.frozen(kw_only=True)
class MysqlConfig(ConnectionConfig):
    """``[source]`` with ``type = "mysql"`` (MySQL 8 and MariaDB 10.x)."""

    zero_dates: Literal["error", "null"] = doc(
        "What a zero or invalid date (`0000-00-00`, `2024-00-15`, `2024-02-30`, which MySQL "
        "stores under a permissive sql_mode) in a DATE, DATETIME or TIMESTAMP column "
        "becomes: `error` fails the export naming the column and the value; `null` writes "
        "NULL (the value cannot be told from a real NULL afterwards).",
        default="error",
    )
    application_name: str = doc(
        "Connection attribute `program_name`, shown in "
        "`performance_schema.session_connect_attrs`, so a DBA can tell Rivet's sessions "
        "apart.",
        default="rivet",
    )
    read_path: Literal["auto", "connectorx", "pymysql"] = doc(
        "How rows are read. `auto`: over ConnectorX (binary protocol decoded in Rust into "
        "Arrow, several connections for a parallel `table` export) whenever it can carry "
        "every column exactly, otherwise over pymysql, with the reason in the run summary. "
        "`connectorx`: fail instead of falling back. `pymysql`: always the classic text "
        "protocol over pymysql (one connection).",
        default="auto",
    )
    connect_timeout_s: int = doc(
        "Seconds to wait for a connection before failing (a transient error, retried).",
        default=10,
    )

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = super().config_issues(config_dir)
        if self.url is not None and urlsplit(self.url).query:
            issues.append(("url", "the mysql source takes no URL query parameters; use the "
                                  "[source.tls] table and the source's own keys"))
        if self.connect_timeout_s < 1:
            issues.append(("connect_timeout_s", "must be at least 1"))
        return issues
