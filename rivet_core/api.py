"""The plugin author's API: every name a source, format or destination plugin imports.

Import from here, and only from here (and, in tests, from :mod:`rivet_core.testing`): the
built-in plugins do the same, and a test holds them to it. Names are loaded on first use,
so ``from rivet_core.api import SourceSpec, hookimpl`` in a plugin's top module loads
neither pyarrow nor a driver, and ``rivet --help`` stays fast. The guide is
``docs/plugins.md``.

Registration
    :data:`hookimpl`; :class:`SourceSpec`, :class:`FormatSpec`, :class:`DestinationSpec`;
    :class:`DestinationCapabilities` and :class:`WriteCommitProtocol`.
Config
    :func:`doc` (a documented attrs field), :class:`ChecksConfig` and
    :class:`ChecksReferences` (optional checks on a ``config_cls``);
    :class:`ConnectionConfig`, :class:`TLSConfig`, :class:`ConnectionParams` (the shared
    database connection keys).
Sources
    :class:`Source`, :class:`BatchStream`, :class:`Query`, :class:`ReadOptions`,
    :class:`SourceContext`; the dialect (:class:`Dialect`, :class:`CursorSpec` and the
    optional pieces ``Supports*``); the SQL source toolkit (:class:`SqlSource`,
    :class:`FetchingBatchStream`, :class:`ConnectionSlot`, :class:`ErrorTable`,
    :func:`apply_overrides`); the type mapping vocabulary (:class:`ColumnInfo`,
    :class:`Fidelity`, :class:`Rescue`, :func:`schema_of`, :func:`apply_override`,
    :func:`unmatched_overrides`, :func:`unsupported_error`, :func:`decimal_type`).
Formats
    :class:`Format`, :class:`FormatWriter`, :class:`Compression`.
Destinations
    :class:`Destination`, :class:`WriteTarget`, :class:`CommittedFile`,
    :class:`DestinationContext`, :class:`SupportsListing`.
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
        Source,
        SourceContext,
        SupportsListing,
        WriteTarget,
    )
    from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol
    from rivet_core.config.connection import ConnectionConfig, ConnectionParams, TLSConfig
    from rivet_core.config.models import ChecksConfig, ChecksReferences, doc
    from rivet_core.dialect import (
        CursorSpec,
        Dialect,
        Query,
        SupportsCatalog,
        SupportsDayArithmetic,
        SupportsExplain,
        SupportsPrimaryKey,
        SupportsServerTime,
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
        ColumnInfo,
        Fidelity,
        Rescue,
        apply_override,
        decimal_type,
        schema_of,
        unmatched_overrides,
        unsupported_error,
    )

_HOME: dict[str, str] = {
    **dict.fromkeys(("BatchStream", "CommittedFile", "Compression", "Destination",
                     "DestinationContext", "Format", "FormatWriter", "ReadOptions", "Source",
                     "SourceContext", "SupportsListing", "WriteTarget"), "rivet_core.backends"),
    **dict.fromkeys(("DestinationCapabilities", "WriteCommitProtocol"),
                    "rivet_core.capabilities"),
    **dict.fromkeys(("ConnectionConfig", "ConnectionParams", "TLSConfig"),
                    "rivet_core.config.connection"),
    **dict.fromkeys(("ChecksConfig", "ChecksReferences", "doc"), "rivet_core.config.models"),
    **dict.fromkeys(("CursorSpec", "Dialect", "Query", "SupportsCatalog",
                     "SupportsDayArithmetic", "SupportsExplain", "SupportsPrimaryKey",
                     "SupportsServerTime"), "rivet_core.dialect"),
    **dict.fromkeys(("DestinationError", "FormatError", "RivetError", "SourceError",
                     "TransientDestinationError", "TransientError", "TransientSourceError",
                     "UnsupportedTypeError", "source_error"), "rivet_core.errors"),
    **dict.fromkeys(("redact", "register_secret"), "rivet_core.redact"),
    **dict.fromkeys(("ConnectionSlot", "ErrorTable", "FetchingBatchStream", "SqlSource",
                     "apply_overrides"), "rivet_core.sources"),
    **dict.fromkeys(("DestinationSpec", "FormatSpec", "SourceSpec"), "rivet_core.specs"),
    **dict.fromkeys(("ColumnInfo", "Fidelity", "Rescue", "apply_override", "decimal_type",
                     "schema_of", "unmatched_overrides", "unsupported_error"),
                    "rivet_core.types"),
}

__all__ = [
    "BatchStream", "ChecksConfig", "ChecksReferences", "ColumnInfo", "CommittedFile",
    "Compression", "ConnectionConfig", "ConnectionParams", "ConnectionSlot", "CursorSpec",
    "Destination", "DestinationCapabilities", "DestinationContext", "DestinationError",
    "DestinationSpec", "Dialect", "ErrorTable", "FetchingBatchStream", "Fidelity", "Format",
    "FormatError", "FormatSpec", "FormatWriter", "Query", "ReadOptions", "Rescue", "RivetError",
    "Source", "SourceContext", "SourceError", "SourceSpec", "SqlSource", "SupportsCatalog",
    "SupportsDayArithmetic", "SupportsExplain", "SupportsListing", "SupportsPrimaryKey",
    "SupportsServerTime", "TLSConfig", "TransientDestinationError", "TransientError",
    "TransientSourceError", "UnsupportedTypeError", "WriteCommitProtocol", "WriteTarget",
    "apply_override", "apply_overrides", "decimal_type", "doc", "hookimpl", "redact",
    "register_secret", "schema_of", "source_error", "unmatched_overrides", "unsupported_error",
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
