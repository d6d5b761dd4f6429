"""The ``postgres`` source: PostgreSQL queries streamed as Arrow batches, over binary COPY
(decoded in C, :mod:`.copybin`) or a psycopg 3 server-side cursor.

Importing this module is cheap: it imports only :mod:`rivet_core.api`, the config and the
dialect; psycopg, pyarrow and the C decoder are loaded by :mod:`.source`, which only the
factory loads. See :mod:`.source` for the read protocol and the choice of path,
:mod:`.copyplan` for how COPY keeps types exact, :mod:`.typemap` for the type mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivet_core.api import SourceSpec, hookimpl
from rivet_postgres.config import PostgresConfig
from rivet_postgres.dialect import DIALECT

if TYPE_CHECKING:
    from rivet_core.api import Source, SourceContext

__all__ = ["PostgresConfig", "factory", "rivet_sources"]


def factory(config: PostgresConfig, context: SourceContext) -> Source:
    """Build the source; it connects on first use."""
    from rivet_postgres.source import PostgresSource

    return PostgresSource(config, config_dir=context.config_dir)


@hookimpl
def rivet_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="postgres",
            config_cls=PostgresConfig,
            factory=factory,
            dialect=DIALECT,
            description="PostgreSQL: binary COPY decoded into Arrow in C (ctid "
                        "ranges over parallel connections for tables), psycopg server-side "
                        "cursor as fallback; read-only transactions",
        )
    ]
