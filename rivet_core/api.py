"""The plugin author's API: every name a source, format or destination plugin imports.

Import from here, and only from here (and, in tests, from :mod:`rivet_core.testing`): the
built-in plugins do the same, and a test holds them to it. Names are loaded on first use,
so ``from rivet_core.api import SourceSpec, hookimpl`` in a plugin's top module loads
neither pyarrow nor a driver, and ``rivet --help`` stays fast. The guide is
``docs/plugins.md``.

Registration
    :data:`hookimpl`; :class:`SourceSpec`, :class:`FormatSpec`, :class:`DestinationSpec`;
    :class:`DestinationCapabilities` and :class:`WriteCommitProtocol`;
    :data:`PLUGIN_API_VERSION`, the version of this API (a plugin declares the range it
    supports in ``RIVET_PLUGIN_API``: see :mod:`rivet_core.hookspecs`).
Config
    :func:`doc` (a documented attrs field), :class:`ChecksConfig` and
    :class:`ChecksReferences` (optional checks on a ``config_cls``);
    :class:`ConnectionConfig`, :class:`TLSConfig`, :class:`ConnectionParams` (the shared
    database connection keys); :func:`parse_size` (``"256MB"`` → bytes, as Rivet's own keys
    read sizes).
Sources
    :class:`Source`, :class:`BatchStream`, :class:`Query`, :class:`ReadOptions`,
    :class:`SourceContext`; the dialect (:class:`Dialect`, :class:`CursorSpec` and the
    optional pieces ``Supports*``); the SQL source toolkit (:class:`SqlSource`,
    :class:`FetchingBatchStream`, :class:`ConnectionSlot`, :class:`ErrorTable`,
    :func:`apply_overrides`); the type mapping vocabulary (:class:`ColumnInfo`,
    :class:`Fidelity`, :class:`Rescue`, :func:`schema_of`, :func:`apply_override`,
    :func:`unmatched_overrides`, :func:`unsupported_error`,
    :func:`unsupported_with_fixes`, :func:`decimal_type`, :data:`MAX_DECIMAL_PRECISION`)
    and of a mapping table (:class:`TypeRow`, :func:`type_table`, :data:`DocRow`).
Formats
    :class:`Format`, :class:`FormatWriter`, :class:`Compression`, :class:`SinkGate`,
    :class:`SupportsRowCount`.
Destinations
    :class:`Destination`, :class:`WriteTarget`, :class:`CommittedFile`,
    :class:`DestinationContext`, :class:`SupportsListing`, :class:`SupportsCredentialSource`,
    :class:`SupportsScratchWrite`.
Errors
    :class:`RivetError`, :class:`SourceError`, :class:`TransientSourceError`,
    :func:`source_error`, :class:`UnsupportedTypeError`, :class:`FormatError`,
    :class:`DestinationError`, :class:`TransientDestinationError`, :class:`TransientError`.
Secrets
    :func:`register_secret` (mask a value in every output), :func:`redact`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rivet_core import hookimpl

if TYPE_CHECKING:
    from rivet_core.backends import (
        BatchStream,
        CommittedFile,
        Compression,
        Destination,
        DestinationContext,
        Format,
        FormatWriter,
        ReadOptions,
        SinkGate,
        Source,
        SourceContext,
        SupportsCredentialSource,
        SupportsListing,
        SupportsRowCount,
        SupportsScratchWrite,
        WriteTarget,
    )
    from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
    from rivet_core.config.connection import ConnectionConfig, ConnectionParams, TLSConfig
    from rivet_core.config.models import ChecksConfig, ChecksReferences, doc
    from rivet_core.config.values import parse_size
    from rivet_core.dialect import (
        CursorSpec,
        Dialect,
        Query,
        SupportsCatalog,
        SupportsDayArithmetic,
        SupportsExplain,
        SupportsIntrospection,
        SupportsPlanSteps,
        SupportsPrimaryKey,
        SupportsServerInfo,
        SupportsServerTime,
        SupportsTableStats,
    )
    from rivet_core.errors import (
        DestinationError,
        FormatError,
        RivetError,
        SourceError,
        TransientDestinationError,
        TransientError,
        TransientSourceError,
        UnsupportedTypeError,
        source_error,
    )
    from rivet_core.hookspecs import PLUGIN_API_VERSION
    from rivet_core.redact import redact, register_secret
    from rivet_core.sources import (
        ConnectionSlot,
        ErrorTable,
        FetchingBatchStream,
        SqlSource,
        apply_overrides,
    )
    from rivet_core.specs import DestinationSpec, FormatSpec, SourceSpec
    from rivet_core.types import (
        MAX_DECIMAL_PRECISION,
        ColumnInfo,
        DocRow,
        Fidelity,
        Rescue,
        TypeRow,
        apply_override,
        decimal_type,
        schema_of,
        type_table,
        unmatched_overrides,
        unsupported_error,
        unsupported_with_fixes,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "rivet_core.backends": (
        "BatchStream", "CommittedFile", "Compression", "Destination", "DestinationContext",
        "Format", "FormatWriter", "ReadOptions", "SinkGate", "Source", "SourceContext",
        "SupportsCredentialSource", "SupportsListing", "SupportsRowCount",
        "SupportsScratchWrite", "WriteTarget"),
    "rivet_core.capabilities": ("DestinationCapabilities", "WriteCommitProtocol"),
    "rivet_core.config.connection": ("ConnectionConfig", "ConnectionParams", "TLSConfig"),
    "rivet_core.config.models": ("ChecksConfig", "ChecksReferences", "doc"),
    "rivet_core.config.values": ("parse_size",),
    "rivet_core.dialect": (
        "CursorSpec", "Dialect", "Query", "SupportsCatalog", "SupportsDayArithmetic",
        "SupportsExplain", "SupportsIntrospection", "SupportsPlanSteps", "SupportsPrimaryKey",
        "SupportsServerInfo", "SupportsServerTime", "SupportsTableStats"),
    "rivet_core.errors": (
        "DestinationError", "FormatError", "RivetError", "SourceError",
        "TransientDestinationError", "TransientError", "TransientSourceError",
        "UnsupportedTypeError", "source_error"),
    "rivet_core.hookspecs": ("PLUGIN_API_VERSION",),
    "rivet_core.redact": ("redact", "register_secret"),
    "rivet_core.sources": (
        "ConnectionSlot", "ErrorTable", "FetchingBatchStream", "SqlSource", "apply_overrides"),
    "rivet_core.specs": ("DestinationSpec", "FormatSpec", "SourceSpec"),
    "rivet_core.types": (
        "MAX_DECIMAL_PRECISION", "ColumnInfo", "DocRow", "Fidelity", "Rescue", "TypeRow",
        "apply_override", "decimal_type", "schema_of", "type_table", "unmatched_overrides",
        "unsupported_error", "unsupported_with_fixes"),
}
"""Where each name lives, by module (the names here and in ``__all__`` agree: a test
checks)."""
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "MAX_DECIMAL_PRECISION",
    "PLUGIN_API_VERSION",
    "BatchStream",
    "ChecksConfig",
    "ChecksReferences",
    "ColumnInfo",
    "CommittedFile",
    "Compression",
    "ConnectionConfig",
    "ConnectionParams",
    "ConnectionSlot",
    "CursorSpec",
    "Destination",
    "DestinationCapabilities",
    "DestinationContext",
    "DestinationError",
    "DestinationSpec",
    "Dialect",
    "DocRow",
    "ErrorTable",
    "FetchingBatchStream",
    "Fidelity",
    "Format",
    "FormatError",
    "FormatSpec",
    "FormatWriter",
    "Query",
    "ReadOptions",
    "Rescue",
    "RivetError",
    "SinkGate",
    "Source",
    "SourceContext",
    "SourceError",
    "SourceSpec",
    "SqlSource",
    "SupportsCatalog",
    "SupportsCredentialSource",
    "SupportsDayArithmetic",
    "SupportsExplain",
    "SupportsIntrospection",
    "SupportsListing",
    "SupportsPlanSteps",
    "SupportsPrimaryKey",
    "SupportsRowCount",
    "SupportsScratchWrite",
    "SupportsServerInfo",
    "SupportsServerTime",
    "SupportsTableStats",
    "TLSConfig",
    "TransientDestinationError",
    "TransientError",
    "TransientSourceError",
    "TypeRow",
    "UnsupportedTypeError",
    "WriteCommitProtocol",
    "WriteTarget",
    "apply_override",
    "apply_overrides",
    "decimal_type",
    "doc",
    "hookimpl",
    "parse_size",
    "redact",
    "register_secret",
    "schema_of",
    "source_error",
    "type_table",
    "unmatched_overrides",
    "unsupported_error",
    "unsupported_with_fixes",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
