"""The ``mysql`` source: MySQL and MariaDB queries streamed as Arrow batches over pymysql.

Importing this module is cheap: pymysql and pyarrow are imported by :mod:`.source`, which
only the factory loads. See :mod:`.source` for the read protocol, :mod:`.typemap` for the
type mapping and :mod:`.decode` for how the text protocol becomes Arrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivet_core import hookimpl
from rivet_core.specs import SourceSpec
from rivet_mysql.config import MysqlConfig

if TYPE_CHECKING:
    from rivet_core.backends import Source, SourceContext

__all__ = ["MysqlConfig", "factory", "rivet_sources"]


def factory(config: MysqlConfig, context: SourceContext) -> Source:
    """Build the source; it connects on first use."""
    from rivet_mysql.source import MysqlSource

    return MysqlSource(config, config_dir=context.config_dir)


@hookimpl
def rivet_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="mysql",
            config_cls=MysqlConfig,
            factory=factory,
            dialect="mysql",
            description="MySQL 8 / MariaDB via pymysql: read-only transaction, unbuffered "
                        "streaming, session time zone +00:00",
        )
    ]
