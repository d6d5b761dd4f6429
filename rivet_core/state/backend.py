"""Which state backend a project uses, and opening it.

The choice, first match wins:

1. the config's ``[state] url``, or the variable its ``[state] url_env`` names: PostgreSQL;
2. the environment variable ``RIVET_STATE_URL`` (unset or empty: no choice): PostgreSQL;
3. the SQLite file ``.rivet_state.db`` beside the config.

The config wins over the environment because it is the project's own statement of where its
state is: a machine-wide ``RIVET_STATE_URL`` must not split one project's state across two
stores. A PostgreSQL store keeps its tables in ``[state] schema`` (default ``rivet``).

:class:`StateLocation` is the resolved choice, pure data that never prints its password.
PostgreSQL support (psycopg) is imported only when a store there is opened, so commands
that touch no state stay fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import attrs

from rivet_core.config.models import STATE_URL_SCHEMES, StateConfig
from rivet_core.errors import StateError
from rivet_core.redact import redact, register_secret
from rivet_core.state.base import StateNotFound, StateStore
from rivet_core.state.store import STATE_FILE, SQLiteStateStore, open_sqlite_store

STATE_URL_ENV = "RIVET_STATE_URL"
DEFAULT_SCHEMA = "rivet"

log = logging.getLogger("rivet.state")
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log a warning about the state store's setup once per process, however many times
    the store is opened."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


@attrs.frozen(kw_only=True)
class StateLocation:
    """Where a project's state lives. ``url`` holds the password if the URL has one: print
    :meth:`display`, never the URL."""

    backend: Literal["sqlite", "postgresql"]
    path: Path | None = None
    """SQLite: the state file."""
    url: str | None = attrs.field(default=None, repr=False)
    """PostgreSQL: the libpq URL."""
    schema: str = DEFAULT_SCHEMA
    """PostgreSQL: the schema of the state tables."""
    origin: str = "default"
    """What chose it: ``[state] url``, ``[state] url_env (NAME)``, ``RIVET_STATE_URL`` or
    ``default``."""

    def display(self) -> str:
        if self.backend == "sqlite":
            return str(self.path)
        return f"{redact(self.url or '')} (schema {self.schema})"


def postgres_location(url: str, schema: str = DEFAULT_SCHEMA, *,
                      origin: str = "command line") -> StateLocation:
    """A PostgreSQL location; :class:`StateError` unless ``url`` is a ``postgresql://``
    URL. Its password is registered for redaction."""
    if not url.startswith(STATE_URL_SCHEMES):
        raise StateError(f"{origin}: {redact(url)!r} is not a postgresql:// URL",
                         hint="the state store is PostgreSQL: postgresql://user@host:5432/db")
    password = urlsplit(url).password
    if password:
        register_secret(password)
        register_secret(unquote(password))
    return StateLocation(backend="postgresql", url=url, schema=schema, origin=origin)


def resolve_location(config_dir: Path, state: StateConfig | None,
                     environ: Mapping[str, str] | None = None) -> StateLocation:
    """Where the state of the project whose config is in ``config_dir`` lives (see the
    module for the order)."""
    environ = os.environ if environ is None else environ
    schema = state.schema if state is not None else DEFAULT_SCHEMA
    from_env = environ.get(STATE_URL_ENV) or None
    if state is not None and state.url is not None:
        chosen = postgres_location(state.url, schema, origin="[state] url")
    elif state is not None and state.url_env is not None:
        value = environ.get(state.url_env)
        if not value:
            raise StateError(
                f"[state] url_env: environment variable {state.url_env!r} is not set",
                hint=f"export {state.url_env}=postgresql://… (the state store's URL)")
        chosen = postgres_location(value, schema, origin=f"[state] url_env ({state.url_env})")
    elif from_env is not None:
        return postgres_location(from_env, schema, origin=STATE_URL_ENV)
    else:
        return StateLocation(backend="sqlite", path=config_dir / STATE_FILE)
    if from_env is not None and from_env != chosen.url:
        warn_once(f"{STATE_URL_ENV} is set but not used: the config's {chosen.origin} names "
                  "the state store")
    return chosen


def open_location(location: StateLocation, *, init: bool = False,
                  inspect: bool = False) -> StateStore:
    """The store at ``location``, created (or migrated) if need be. SQLite: ``init`` and
    ``inspect`` as :func:`~rivet_core.state.store.open_sqlite_store` takes them;
    PostgreSQL has no file to set aside or to find read-only, so they change nothing."""
    if location.backend == "sqlite":
        assert location.path is not None
        return open_sqlite_store(location.path, init=init, inspect=inspect)
    from rivet_core.state.postgres import PostgresStateStore

    assert location.url is not None
    return PostgresStateStore(location.url, location.schema)


def open_store(config_dir: Path, *, state: StateConfig | None, init: bool = False,
               inspect: bool = False, environ: Mapping[str, str] | None = None
               ) -> StateStore:
    """The state store of the project whose config is in ``config_dir`` and whose
    ``[state]`` table is ``state`` (None: it has none). ``init`` (``rivet run
    --init-state``): start over from an empty or corrupt SQLite file; ``inspect``: the
    command only reads."""
    return open_location(resolve_location(config_dir, state, environ), init=init,
                         inspect=inspect)


def open_existing_store(config_dir: Path, *, state: StateConfig | None,
                        readonly: bool = False,
                        environ: Mapping[str, str] | None = None) -> StateStore | None:
    """The project's state store if it has one, creating nothing: None when there is no
    state file (or only an empty one), or no state schema. ``readonly``: open a SQLite
    file read-only; a PostgreSQL store is then never migrated."""
    location = resolve_location(config_dir, state, environ)
    if location.backend == "sqlite":
        assert location.path is not None
        if not location.path.is_file() or location.path.stat().st_size == 0:
            return None
        return SQLiteStateStore(location.path, readonly=readonly)
    from rivet_core.state.postgres import PostgresStateStore

    assert location.url is not None
    try:
        return PostgresStateStore(location.url, location.schema, create=False,
                                  migrate=not readonly)
    except StateNotFound:
        return None
