"""Connection settings shared by database source plugins.

Four ways to say where the database is, exactly one of them: ``url``, ``url_env`` (name of
an env var holding the URL), ``url_file`` (a file holding it), or structured fields
(``host``, ``port``, ``user``, ``password`` / ``password_env``, ``database``). Resolving them
registers the password with :mod:`rivet_core.redact` so it can never be printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from rivet_core.config.models import doc
from rivet_core.redact import MASK, register_secret

TLSMode = Literal["disable", "require", "verify-ca", "verify-full"]


@attrs.frozen(kw_only=True)
class TLSConfig:
    """``[source.tls]``: encryption and verification of the database connection."""

    mode: TLSMode = doc(
        "`disable`, `require` (encrypt, no verification), `verify-ca` (check the chain) or "
        "`verify-full` (chain and host name; the default when the table is present).",
        default="verify-full",
    )
    ca_file: str | None = doc("PEM file of the CA to trust, relative to the config file.",
                              default=None)


@attrs.frozen(kw_only=True)
class ConnectionConfig:
    """Connection keys of ``[source]`` for database sources (postgres, mysql)."""

    url: str | None = doc(
        "Connection URL (`postgresql://user@host:5432/db`, `mysql://user@host/db`). "
        "A password in it is allowed but warned about; prefer `url_env` or `url_file`.",
        default=None,
    )
    url_env: str | None = doc("Name of an environment variable holding the URL.", default=None)
    url_file: str | None = doc(
        "File holding the URL (trimmed), relative to the config file's directory.", default=None
    )
    host: str | None = doc("Structured form: server host.", default=None)
    port: int | None = doc("Structured form: server port (default 5432 / 3306).", default=None)
    user: str | None = doc("Structured form: user name.", default=None)
    password: str | None = doc(
        "Structured form: password (warned about; prefer `password_env`).", default=None
    )
    password_env: str | None = doc(
        "Structured form: name of an environment variable holding the password.", default=None
    )
    database: str | None = doc("Structured form: database name.", default=None)
    tls: TLSConfig | None = doc("TLS settings; see `[source.tls]`.", default=None)

    def config_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Exclusivity rules and unset references, as (key, message) pairs."""
        issues: list[tuple[str, str]] = []
        url_keys = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        structured = [
            k for k in ("host", "port", "user", "password", "password_env", "database")
            if getattr(self, k) is not None
        ]
        if len(url_keys) > 1:
            issues.append((url_keys[1], f"specify exactly one of 'url', 'url_env', 'url_file' "
                                        f"(got {', '.join(url_keys)})"))
        if url_keys and structured:
            issues.append((structured[0], "pick either a URL (url/url_env/url_file) or "
                                          "structured fields (host/user/database...), not both"))
        if not url_keys and not structured:
            issues.append(("url_env", "no connection configured: set one of url_env, url_file, "
                                      "url, or host/user/database"))
        if not url_keys and structured:
            for required in ("host", "user", "database"):
                if getattr(self, required) is None:
                    issues.append((required, "required field missing for a structured "
                                             "connection"))
        if self.password is not None and self.password_env is not None:
            issues.append(("password_env", "specify 'password' or 'password_env', not both"))
        return issues

    def reference_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Unset environment variables and missing files the connection reads."""
        issues: list[tuple[str, str]] = []
        if self.url_env is not None and self.url_env not in os.environ:
            issues.append(("url_env", f"environment variable {self.url_env!r} is not set"))
        if self.password_env is not None and self.password_env not in os.environ:
            issues.append(("password_env",
                           f"environment variable {self.password_env!r} is not set"))
        if self.url_file is not None and not (config_dir / self.url_file).is_file():
            issues.append(("url_file", f"file {self.url_file!r} does not exist"))
        ca_file = self.tls.ca_file if self.tls is not None else None
        if ca_file is not None and not (config_dir / ca_file).is_file():
            issues.append(("tls.ca_file", f"file {ca_file!r} does not exist"))
        return issues

    def plaintext_password(self) -> bool:
        """The config itself holds a password (inline ``url`` or ``password``)."""
        if self.password is not None:
            return True
        return self.url is not None and urlsplit(self.url).password is not None

    def resolve(self, config_dir: Path, *, default_port: int) -> ConnectionParams:
        """Read env vars and files and return the concrete parameters.

        Raises ``ValueError`` for a malformed URL; call :meth:`config_issues` first."""
        if self.url is not None or self.url_env is not None or self.url_file is not None:
            if self.url is not None:
                url = self.url
            elif self.url_env is not None:
                url = os.environ[self.url_env]
            else:
                url = (config_dir / str(self.url_file)).read_text().strip()
            params = ConnectionParams.from_url(url, default_port=default_port)
        else:
            password = self.password
            if self.password_env is not None:
                password = os.environ[self.password_env]
            params = ConnectionParams(
                host=str(self.host), port=self.port or default_port, user=str(self.user),
                password=password, database=str(self.database), query={},
            )
        register_secret(params.password)
        if self.tls is not None:
            ca = str(config_dir / self.tls.ca_file) if self.tls.ca_file else None
            params = attrs.evolve(params, tls_mode=self.tls.mode, ca_file=ca)
        return params


@attrs.frozen(kw_only=True)
class ConnectionParams:
    """Where and as whom to connect, fully resolved. ``repr`` and :meth:`safe_url` never
    show the password."""

    host: str
    port: int
    user: str
    password: str | None = attrs.field(repr=False)
    database: str
    query: dict[str, str]
    """Extra URL query parameters (``sslmode=require``...)."""
    tls_mode: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, *, default_port: int) -> ConnectionParams:
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            raise ValueError("not a connection URL (expected scheme://user@host/database)")
        register_secret(unquote(parts.password) if parts.password else None)
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password) if parts.password is not None else None,
            database=unquote(parts.path.lstrip("/")),
            query=dict(parse_qsl(parts.query)),
        )

    def safe_url(self, scheme: str) -> str:
        """``scheme://user:REDACTED@host:port/db`` (no password part when there is none)."""
        userinfo = quote(self.user, safe="")
        if self.password:
            userinfo += f":{MASK}"
        return f"{scheme}://{userinfo}@{self.host}:{self.port}/{quote(self.database, safe='')}"
