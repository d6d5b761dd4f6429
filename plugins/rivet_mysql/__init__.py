"""The ``mysql`` source: MySQL and MariaDB queries streamed as Arrow batches, over ConnectorX
(binary protocol decoded in Rust) when it can carry the read exactly and bounded, else over
pymysql (classic text protocol).

Importing this module is cheap: it imports only :mod:`rivet_core.api`, the config and the
dialect; pymysql, ConnectorX and pyarrow are imported by :mod:`.source` and the modules it
uses, which only the factory loads. See :mod:`.source` for the choice of path,
:mod:`.session` and :mod:`.cursor` for the pymysql path, :mod:`.cxplan`, :mod:`.carriers`
and :mod:`.cxread` for the ConnectorX path, :mod:`.typemap` for the type mapping and
:mod:`.builders` for how the server's text becomes Arrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivet_core.api import SourceSpec, hookimpl
from rivet_mysql.config import MysqlConfig
from rivet_mysql.dialect import DIALECT

if TYPE_CHECKING:
    from rivet_core.api import Source, SourceContext

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
            dialect=DIALECT,
            description="MySQL 8 / MariaDB via ConnectorX (pymysql fallback): read-only "
                        "transactions, bounded streaming, session time zone +00:00",
        )
    ]
