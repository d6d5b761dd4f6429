"""The JSON Schema (draft 2020-12) of ``rivet.toml``, generated from the config models.

What ``rivet schema config`` prints: Rivet's own tables from their attrs models
(:mod:`rivet_core.config.models`, :mod:`rivet_core.config.quality`, the notification
targets of :mod:`rivet_core.notify`), and the tables plugins own (``[source]``,
``[exports.format]``, ``[exports.destination]``) from the ``config_cls`` of every backend
installed, one ``if``/``then`` branch per ``type``. Field docs become ``description``; every
table has ``additionalProperties: false``, as the loader rejects unknown keys.

An editor or a CI step can check a config with it before Rivet runs. It describes each key's
shape, not every rule: cross-field rules (exactly one of ``query``/``query_file``/``table``,
the keys of another mode, value ranges) are checked by the loader, ``rivet check`` reports
them. Pure: a registry in, a JSON-ready dict out.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs

from rivet_core.config.models import (
    MAX_PARALLEL_EXPORTS,
    Config,
    DestinationConfig,
    ExportConfig,
    FormatConfig,
    SourceConfig,
    StateConfig,
)
from rivet_core.config.quality import CountGate, RatioGate, UniqueKey
from rivet_core.notify import EVENTS, NotificationsConfig, Target
from rivet_core.plugins import Registry
from rivet_core.runner.modes import MODES

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_PLUGIN_TABLES: dict[type, tuple[str, tuple[str, ...]]] = {
    SourceConfig: ("source", ("tuning",)),
    FormatConfig: ("format", ()),
    DestinationConfig: ("destination", ()),
}
"""Core model of a plugin-owned table → the kind of backend, the core keys besides
``type``."""

_SHORTHANDS: dict[type, list[dict[str, Any]]] = {
    CountGate: [{"type": "integer"}],
    RatioGate: [{"type": "number"}],
    UniqueKey: [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
}
"""Quality gates also written as their plain value (:mod:`rivet_core.config.quality`)."""

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
    bool: {"type": "boolean"}, Any: {},
}


class _Builder:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.defs: dict[str, dict[str, Any]] = {}
        self.names: dict[type, str] = {}

    # ------------------------------------------------------------------ types

    def ref(self, cls: type) -> dict[str, Any]:
        """``{"$ref": ...}`` to the schema of an attrs class, defined once in ``$defs``."""
        if cls not in self.names:
            name = cls.__name__
            if name in self.defs:
                name = f"{cls.__module__}.{cls.__qualname__}"
            self.names[cls] = name
            self.defs[name] = {}  # reserved: a model may refer to itself
            self.defs[name] = self.table(cls)
        return {"$ref": f"#/$defs/{self.names[cls]}"}

    def type_schema(self, tp: Any) -> dict[str, Any]:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp in _SCALARS:
            return dict(_SCALARS[tp])
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            options = [self.type_schema(a) for a in args if a is not type(None)]
            kinds = [o.get("type") for o in options]
            if len(options) > 1 and all(isinstance(k, str) and len(o) == 1
                                        for k, o in zip(kinds, options, strict=True)):
                return {"type": kinds}
            return options[0] if len(options) == 1 else {"anyOf": options}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.type_schema(args[1])}
        if origin in (list, tuple):
            return {"type": "array", "items": self.type_schema(args[0])}
        if tp in _PLUGIN_TABLES:
            return self.plugin_table(tp)
        if isinstance(tp, type) and attrs.has(tp):
            if tp in _SHORTHANDS:
                return {"anyOf": [*_SHORTHANDS[tp], self.ref(tp)]}
            return self.ref(tp)
        return {}  # a type this generator does not know: anything the loader accepts

    def properties(self, cls: type, skip: tuple[str, ...] = ("options",)
                   ) -> tuple[dict[str, Any], list[str]]:
        """The JSON Schema of each field of ``cls``, and the required ones."""
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # a plugin's annotations that cannot be resolved: keys only
            hints = {}
        props: dict[str, Any] = {}
        required = []
        for field in attrs.fields(cls):
            if field.name in skip:
                continue
            schema = self.type_schema(hints.get(field.name, Any))
            schema.update(_override(cls, field.name))
            doc = field.metadata.get("doc")
            if doc:
                schema["description"] = doc
            if field.default is attrs.NOTHING:
                required.append(field.name)
            else:
                default = _json_default(field.default)
                if default is not None:
                    schema["default"] = default
            props[field.name] = schema
        return props, required

    def table(self, cls: type) -> dict[str, Any]:
        props, required = self.properties(cls)
        schema: dict[str, Any] = {"type": "object"}
        if cls.__doc__:
            schema["description"] = " ".join(cls.__doc__.split())
        schema["properties"] = props
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        return schema

    # ------------------------------------------------------------------ plugin tables

    def plugin_table(self, core: type) -> dict[str, Any]:
        """A ``[source]``, format or destination table, defined once in ``$defs``: ``type``
        picks the backend, whose ``config_cls`` keys (and the core keys) are then the only
        ones allowed. A format may also be just its name (``format = "parquet"``)."""
        kind, core_keys = _PLUGIN_TABLES[core]
        if kind not in self.defs:
            self.defs[kind] = {}
            self.defs[kind] = self._plugin_table(core, kind, core_keys)
        ref = {"$ref": f"#/$defs/{kind}"}
        if core is FormatConfig:
            return {"anyOf": [{"enum": self.registry.names(kind)}, ref]}
        return ref

    def _plugin_table(self, core: type, kind: str, core_keys: tuple[str, ...]
                      ) -> dict[str, Any]:
        names = self.registry.names(kind)
        props, _ = self.properties(core)
        core_props = {k: props[k] for k in core_keys}
        branches = []
        for name in names:
            spec = self.registry.table(kind)[name].spec
            own, required = self.properties(spec.config_cls, skip=())
            then: dict[str, Any] = {
                "properties": {"type": {"const": name}, **core_props, **own},
                "additionalProperties": False,
            }
            if required:
                then["required"] = required
            if spec.description:
                then["description"] = spec.description
            branches.append({"if": {"properties": {"type": {"const": name}},
                                    "required": ["type"]},
                             "then": then})
        return {
            "type": "object",
            "description": " ".join((core.__doc__ or "").split()),
            "properties": {"type": {
                "enum": names,
                "description": f"The {kind} backend: one of the installed {kind} types "
                               f"({', '.join(names)})."}},
            "required": ["type"],
            "allOf": branches,
        }

    def document(self) -> dict[str, Any]:
        notifications_props, _ = self.properties(NotificationsConfig)
        parallel = attrs.fields_dict(Config)["parallel_exports"]
        return {
            "$schema": DIALECT,
            "title": "rivet.toml",
            "description": "A Rivet config: one [source] table and one or more [[exports]] "
                           "entries. ${NAME} in a string value is replaced by --param NAME=... "
                           "or the environment before the file is checked.",
            "type": "object",
            "properties": {
                "source": self.type_schema(SourceConfig),
                "exports": {"type": "array", "minItems": 1, "items": self.ref(ExportConfig),
                            "description": "The [[exports]] entries."},
                "notifications": {
                    "type": "object", "properties": notifications_props,
                    "additionalProperties": False,
                    "description": " ".join((NotificationsConfig.__doc__ or "").split())},
                "parallel_exports": {
                    "type": "integer", "minimum": 1, "maximum": MAX_PARALLEL_EXPORTS,
                    "default": parallel.default, "description": parallel.metadata["doc"]},
                "state": self.table(StateConfig),
            },
            "required": ["source", "exports"],
            "additionalProperties": False,
            "$defs": self.defs,
        }


def _override(cls: type, name: str) -> dict[str, Any]:
    """Keys whose allowed values live in a registry rather than in their type."""
    if cls is ExportConfig and name == "mode":
        return {"enum": list(MODES)}
    if issubclass(cls, Target) and name == "on":
        return {"items": {"enum": list(EVENTS)}}
    return {}


def _json_default(value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, tuple):
        return list(value)
    return None  # None (unset), factories, anything else: no default shown


def config_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a config file for the backends in ``registry``."""
    return _Builder(registry).document()
