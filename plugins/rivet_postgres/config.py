"""``[source]`` keys of the postgres source: the shared connection keys plus PostgreSQL's own,
and how TLS keywords in a PostgreSQL URL relate to ``[source.tls]``.

A PostgreSQL URL may carry libpq's TLS keywords (``?sslmode=require``). They are read here
and never handed to libpq: with ``[source.tls]`` present the table decides, and a URL
keyword that says otherwise is a config error naming both keys (an ``url_env`` from the
environment must not be able to turn ``verify-full`` into plaintext); without the table,
the URL's ``sslmode`` is the source's TLS mode, with Rivet's meaning of each mode
(:func:`url_tls`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import attrs

from rivet_core.api import ConnectionConfig, ConnectionParams, TLSConfig, doc

URL_TLS_KEYS = ("sslmode", "sslrootcert", "requiressl")
"""libpq keywords that choose or weaken TLS: Rivet reads them, libpq never sees them."""
_URL_MODES = ("disable", "require", "verify-ca", "verify-full")
_UNSET_MODES = ("prefer", "allow")
"""libpq modes that are Rivet's default when no TLS is configured (no guarantee)."""


@attrs.frozen(kw_only=True)
class UrlTLS:
    """What a URL's TLS keywords ask for: a mode and a CA file, or nothing."""

    mode: str | None
    ca_file: str | None


def url_tls(query: dict[str, str], tls: TLSConfig | None) -> UrlTLS:
    """The TLS a URL's query asks for, given the ``[source.tls]`` table. Raises
    ``ValueError`` naming both settings when the URL contradicts the table, or when the
    URL alone asks for something Rivet does not do."""
    mode = query.get("sslmode")
    root = query.get("sslrootcert")
    if "requiressl" in query:
        raise ValueError("requiressl in the URL is an obsolete libpq keyword; set "
                         "[source.tls] mode instead")
    if tls is not None:
        if mode is not None and mode != tls.mode:
            raise ValueError(f"sslmode={mode} in the URL conflicts with tls.mode = "
                             f'"{tls.mode}" in [source.tls]; remove sslmode from the URL '
                             "([source.tls] decides)")
        if root is not None:
            raise ValueError("sslrootcert in the URL conflicts with [source.tls]; give the "
                             "CA file as tls.ca_file")
        _check_gss(query, tls.mode, "tls.mode")
        return UrlTLS(mode=None, ca_file=None)
    if mode is not None and mode not in _URL_MODES + _UNSET_MODES:
        raise ValueError(f"sslmode={mode} in the URL is not a libpq sslmode")
    effective = None if mode in _UNSET_MODES else mode
    if root is not None and effective not in ("verify-ca", "verify-full"):
        raise ValueError("sslrootcert in the URL is used only with sslmode=verify-ca or "
                         "verify-full, the modes that check a certificate")
    _check_gss(query, effective, "sslmode")
    ca = None if root in (None, "system") else root
    return UrlTLS(mode=effective, ca_file=ca)


def _check_gss(query: dict[str, str], mode: str | None, key: str) -> None:
    # A GSSAPI-encrypted session skips TLS, and with it the certificate checks a mode asks
    # for; Rivet turns it off whenever a mode requires TLS.
    gss = query.get("gssencmode", "disable")
    if mode in _URL_MODES[1:] and gss != "disable":
        raise ValueError(f'gssencmode={gss} in the URL conflicts with {key} = "{mode}": a '
                         "GSSAPI-encrypted session would replace TLS and its certificate "
                         "checks; remove gssencmode from the URL")


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


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

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = super().config_issues(config_dir)
        if self.url is not None:
            try:
                url_tls(_query(self.url), self.tls)
            except ValueError as exc:
                issues.append(("url", str(exc)))
        return issues

    def reference_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        issues = super().reference_issues(config_dir)
        key = "url_env" if self.url_env is not None else "url_file"
        url = self.read_url(config_dir) if self.url is None else None
        if url is not None:
            try:
                url_tls(_query(url), self.tls)
            except ValueError as exc:
                issues.append((key, f"the URL it holds: {exc}"))
        return issues

    def resolve(self, config_dir: Path, *, default_port: int) -> ConnectionParams:
        """As for every source, plus the URL's TLS keywords folded into the TLS settings
        (and removed from the libpq keywords)."""
        params = super().resolve(config_dir, default_port=default_port)
        asked = url_tls(params.query, self.tls)
        query = {k: v for k, v in params.query.items() if k not in URL_TLS_KEYS}
        if self.tls is None and "sslmode" in params.query:
            params = attrs.evolve(params, tls_mode=asked.mode, ca_file=asked.ca_file,
                                  tls_origin="sslmode in the URL")
        return attrs.evolve(params, query=query)
