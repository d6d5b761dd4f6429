"""Connection settings shared by database source plugins.

Four ways to say where the database is, exactly one of them: ``url``, ``url_env`` (name of
an env var holding the URL), ``url_file`` (a file holding it), or structured fields
(``host``, ``port``, ``user``, ``password`` / ``password_env``, ``database``). Resolving them
registers the password with :mod:`rivet_core.redact` so it can never be printed.

TLS is described here once for every database source (``[source.tls]``, :class:`TLSConfig`),
and the resolved :class:`ConnectionParams` say what each mode promises, so that every plugin
builds its drivers' TLS settings from the same meaning: ``require`` encrypts and never falls
back to plaintext, ``verify-ca`` also checks the certificate chain against ``ca_file`` (or the
system CA store), ``verify-full`` also checks the host name. Without ``[source.tls]`` the
drivers encrypt when the server offers TLS and check nothing; a connection to another machine
is then warned about once per process (:meth:`ConnectionParams.warn_if_unverified`). Not
here: the drivers' own settings (each source plugin).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from rivet_core.config.models import doc
from rivet_core.errors import SourceError
from rivet_core.redact import MASK, redact, register_secret

TLSMode = Literal["disable", "require", "verify-ca", "verify-full"]
ENCRYPTED_MODES = ("require", "verify-ca", "verify-full")
"""Modes that refuse a plaintext connection."""
VERIFYING_MODES = ("verify-ca", "verify-full")
"""Modes that check the server's certificate (and so read a CA file or the system store)."""

_log = logging.getLogger("rivet.source")


@attrs.frozen(kw_only=True)
class TLSConfig:
    """``[source.tls]``: encryption and verification of the database connection."""

    mode: TLSMode = doc(
        "`disable` (plaintext), `require` (encrypted, never plaintext; the certificate is "
        "not checked), `verify-ca` (encrypted; the certificate chain is checked against "
        "`ca_file`, or the system CA store without it) or `verify-full` (as `verify-ca`, and "
        "the certificate must name the host connected to; the default when the table is "
        "present). Without the table the connection is encrypted only if the server offers "
        "TLS, and nothing is checked.",
        default="verify-full",
    )
    ca_file: str | None = doc(
        "PEM file of the CA(s) to trust instead of the system CA store, relative to the "
        "config file. Only `verify-ca` and `verify-full` check a certificate.",
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
        if self.tls is not None and self.tls.ca_file is not None \
                and self.tls.mode not in VERIFYING_MODES:
            issues.append(("tls.ca_file", f'tls.mode = "{self.tls.mode}" checks no '
                                          "certificate, so a CA file would be ignored: set "
                                          'mode = "verify-ca" (chain) or "verify-full" '
                                          "(chain and host name), or remove ca_file"))
        return issues

    def reference_issues(self, config_dir: Path) -> list[tuple[str, str]]:
        """Unset environment variables and missing files the connection reads."""
        issues: list[tuple[str, str]] = []
        if self.url_env is not None and self.url_env not in os.environ:
            issues.append(("url_env", f"environment variable {self.url_env!r} is not set"))
        if self.password_env is not None and self.password_env not in os.environ:
            issues.append(("password_env",
                           f"environment variable {self.password_env!r} is not set"))
        if self.url_file is not None:
            problem = _file_problem(config_dir, self.url_file)
            if problem:
                issues.append(("url_file", problem))
        ca_file = self.tls.ca_file if self.tls is not None else None
        if ca_file is not None:
            problem = _file_problem(config_dir, ca_file)
            if problem:
                issues.append(("tls.ca_file", problem))
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
            params = attrs.evolve(params, tls_mode=self.tls.mode, ca_file=ca,
                                  tls_origin="[source.tls]")
        return params

    def read_url(self, config_dir: Path) -> str | None:
        """The URL this config names (read from its variable or file), or None for the
        structured form or a URL that cannot be read yet (unset variable, missing file)."""
        if self.url is not None:
            return self.url
        if self.url_env is not None:
            return os.environ.get(self.url_env)
        if self.url_file is not None:
            try:
                return (config_dir / self.url_file).read_text().strip()
            except OSError:
                return None
        return None


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
    """Extra URL query parameters (libpq keywords such as ``options``...)."""
    tls_mode: str | None = None
    """``disable``, ``require``, ``verify-ca`` or ``verify-full``; None without TLS
    settings: encrypted only when the server offers TLS, nothing checked."""
    ca_file: str | None = None
    """The CA file a verifying mode checks the chain against (None: the system store)."""
    tls_origin: str = "[source.tls]"
    """Which setting chose ``tls_mode``, for messages (``[source.tls]``, ``sslmode in the
    URL``)."""

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

    def tls_required(self) -> bool:
        """The mode refuses plaintext: every connection must prove it is encrypted."""
        return self.tls_mode in ENCRYPTED_MODES

    def tls_verified(self) -> bool:
        """The mode checks the server's certificate chain."""
        return self.tls_mode in VERIFYING_MODES

    def local(self) -> bool:
        """The server is on this machine: a loopback address, ``localhost``, or a Unix
        socket directory. Names are not resolved."""
        host = self.host.strip("[]")
        if host.startswith("/") or host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @staticmethod
    def system_ca_file() -> str | None:
        """The system CA bundle file OpenSSL loads by default (``SSL_CERT_FILE`` when set),
        or None when there is no such file."""
        return ssl.get_default_verify_paths().cafile

    def trust_file(self) -> str | None:
        """The file a verifying mode trusts: ``ca_file``, else the system bundle."""
        return self.ca_file or self.system_ca_file()

    def trust_description(self) -> str:
        """Which CAs a verifying mode trusts, for messages."""
        if self.ca_file is not None:
            return f"the CA file {self.ca_file}"
        bundle = self.system_ca_file()
        return f"the system CA store ({bundle})" if bundle else "the system CA store"

    def tls_summary(self) -> str:
        """The effective TLS mode and what it checks, in one line."""
        if self.tls_mode is None:
            return ("prefer (no [source.tls]): encrypted only if the server offers TLS; the "
                    "certificate is not checked")
        origin = "" if self.tls_origin == "[source.tls]" else f" (from {self.tls_origin})"
        if self.tls_mode == "disable":
            return f"disable{origin}: plaintext"
        if self.tls_mode == "require":
            return f"require{origin}: encrypted, never plaintext; the certificate is not checked"
        what = "chain" if self.tls_mode == "verify-ca" else f"chain and host name {self.host!r}"
        return (f"{self.tls_mode}{origin}: encrypted, never plaintext; certificate {what} "
                f"checked against {self.trust_description()}")

    def tls_setting(self) -> str:
        """The setting that chose the mode, as the user wrote it (for messages)."""
        mode = self.tls_mode or "prefer"
        if self.tls_origin == "[source.tls]" or self.tls_mode is None:
            return f'tls.mode = "{mode}"' if self.tls_mode else "no [source.tls]"
        return f"sslmode={mode} in the URL"

    def tls_failure(self, check: str, detail: str, label: str) -> SourceError:
        """A TLS failure as a permanent error (retrying cannot change a certificate) whose
        hint says which check failed and which CAs were trusted. ``check``: ``chain``,
        ``host``, ``no-tls`` (the server offers none), ``ca-file`` (the CA file is
        unusable), ``not-encrypted`` (the connection came back in plaintext) or
        ``handshake``."""
        setting = self.tls_setting()
        trust = self.trust_description()
        what, hint = {
            "chain": ("certificate chain check failed",
                      f"{setting} checks that the server's certificate is signed by "
                      f"{trust}, and it is not: set tls.ca_file to the CA that signed the "
                      "server's certificate"),
            "host": ("certificate host name check failed",
                     f"{setting} checks that the server's certificate names the host "
                     f"{self.host!r} (chain checked against {trust}), and it names other "
                     "hosts: connect with a name the certificate lists, or use mode = "
                     "\"verify-ca\" to check the chain only"),
            "no-tls": ("required, but the server does not offer it",
                       f"{setting} refuses plaintext: turn TLS on at the server, or set "
                       "tls.mode = \"disable\" if plaintext is acceptable on this network"),
            "ca-file": ("CA file cannot be used",
                        f"{setting} checks the chain against {trust}: give a readable PEM "
                        "file of CA certificates"),
            "not-encrypted": ("required, but the connection is not encrypted",
                              f"{setting} refuses plaintext, and the server reports this "
                              "connection as unencrypted; Rivet closed it"),
            "handshake": ("handshake failed",
                          f"the server and Rivet could not agree on TLS under {setting} "
                          f"(trusting {trust}); check the server's TLS settings"),
        }[check]
        lines = detail.strip().splitlines()
        first = lines[0].strip() if lines else ""
        return SourceError(redact(f"{label}: TLS {what}" + (f" ({first})" if first else "")),
                           hint=hint)

    def unverified_warning(self, kind: str) -> str | None:
        """The warning for a connection to another machine without TLS settings, or None."""
        if self.tls_mode is not None or self.local():
            return None
        return (f"{kind} source: no [source.tls] for {self.host}: the connection is encrypted "
                "only if the server offers TLS, and the server's certificate is not checked, "
                "so credentials and rows may cross the network in plaintext or to an "
                "impostor; set [source.tls] mode = \"verify-full\" (or mode = \"disable\" "
                "to say plaintext is intended)")

    def warn_if_unverified(self, kind: str) -> None:
        """Log :meth:`unverified_warning`, once per process for each message."""
        message = self.unverified_warning(kind)
        if message is not None:
            _warn_once(message)

    def safe_url(self, scheme: str) -> str:
        """``scheme://user:REDACTED@host:port/db`` (no password part when there is none)."""
        userinfo = quote(self.user, safe="")
        if self.password:
            userinfo += f":{MASK}"
        return f"{scheme}://{userinfo}@{self.host}:{self.port}/{quote(self.database, safe='')}"


@functools.cache
def _warn_once(message: str) -> None:
    # One warning per process, however many connections or exports: the reference tool's
    # behaviour, and what keeps the warning readable.
    _log.warning(message)


def _file_problem(config_dir: Path, name: str) -> str | None:
    """Why the file a key names cannot be read, or None (a name the file system refuses is
    a problem like a missing file, not an exception)."""
    try:
        if (config_dir / name).is_file():
            return None
    except (OSError, ValueError) as exc:
        return f"file {name!r} cannot be used: {exc}"
    return f"file {name!r} does not exist"
