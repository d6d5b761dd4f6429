"""The one cattrs converter that turns TOML tables into config models, and the flattening of
its errors into ``(toml path, message, hint)`` triples.

The converter is strict: unknown keys are rejected, and scalars are not coerced (``"false"``
is not a bool, ``"10"`` is not an int), because silent coercion turns typos into behaviour.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ForbiddenExtraKeysError,
    IterableValidationNote,
)


class KeyProblem(Exception):
    """Raised by a structure hook to blame a key *inside* the value being structured."""

    def __init__(self, key: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.hint = hint


_TOML_TYPE_NAMES = {
    bool: "a boolean", int: "an integer", float: "a number", str: "a string",
    dict: "a table", list: "an array",
}


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{_TOML_TYPE_NAMES.get(type(value), type(value).__name__)} ({value!r})"


def _strict(kind: type, accept: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {_TOML_TYPE_NAMES[kind]}, got {_describe(value)}")
        if not isinstance(value, accept):
            raise TypeError(f"expected {_TOML_TYPE_NAMES[kind]}, got {_describe(value)}")
        return kind(value)

    return hook


def _literal_hook(literal: Any) -> Callable[[Any, Any], Any]:
    allowed = typing.get_args(literal)

    def hook(value: Any, _: Any) -> Any:
        if value in allowed and type(value) is type(allowed[0]):
            return value
        choices = ", ".join(repr(a) for a in allowed)
        guess = did_you_mean(str(value), [str(a) for a in allowed])
        raise KeyProblem("", f"must be one of {choices}, got {value!r}", guess)

    return hook


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(bool, _strict(bool, (bool,)))
    converter.register_structure_hook(int, _strict(int, (int,)))
    converter.register_structure_hook(float, _strict(float, (int, float)))
    converter.register_structure_hook(str, _strict(str, (str,)))
    converter.register_structure_hook_func(
        lambda t: typing.get_origin(t) is typing.Literal,
        lambda value, t: _literal_hook(t)(value, t),
    )
    converter.register_structure_hook_func(
        lambda t: {str, int} <= set(typing.get_args(t)), _str_or_int
    )
    # The quality table's shorthand forms (a value, or a table with its severity).
    from rivet_core.config.quality import register_structure_hooks

    register_structure_hooks(converter)
    return converter


def _str_or_int(value: Any, _: Any) -> Any:
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return value
    raise TypeError(f"expected a string or an integer, got {_describe(value)}")


def did_you_mean(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not close:
        close = [c for c in candidates if word and (word in c or c in word)][:1]
    return f"did you mean {close[0]!r}?" if close else None


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_TYPES = {"str": "a string", "int": "an integer", "float": "a float", "bool": "a boolean",
               "list": "an array", "datetime": "a datetime", "date": "a date", "time": "a time"}


def toml_kind(python_type: str) -> str:
    """How a TOML user names the kind of value Python calls ``python_type``."""
    return _TOML_TYPES.get(python_type, f"a {python_type}")


def join(path: str, key: str | int) -> str:
    """A TOML path: ``exports[1].destination.bucket``; a key that is not a bare TOML key is
    quoted as TOML quotes it (``columns."order date"``), so control characters never reach
    the terminal raw."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key:
        return path
    if not _BARE_KEY.match(key):
        key = json.dumps(key)
    return f"{path}.{key}" if path else key


def flatten(
    exc: BaseException, path: str = "", extra_hint: Callable[[str, type], str | None] | None = None
) -> list[tuple[str, str, str | None]]:
    """Every leaf error in a cattrs exception tree as ``(path, message, hint)``."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[tuple[str, str, str | None]] = []
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, AttributeValidationNote):
                    sub_path = join(path, note.name)
                elif isinstance(note, IterableValidationNote):
                    index = note.index
                    sub_path = join(path, index if isinstance(index, int) else str(index))
            out.extend(flatten(sub, sub_path, extra_hint))
        return out
    if isinstance(exc, ForbiddenExtraKeysError):
        fields = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        out = []
        for key in sorted(exc.extra_fields):
            hint = (extra_hint(key, exc.cl) if extra_hint else None) or did_you_mean(key, fields)
            out.append((join(path, key), "unknown key", hint))
        return out
    if isinstance(exc, KeyProblem):
        return [(join(path, exc.key), exc.message, exc.hint)]
    if isinstance(exc, KeyError):
        return [(path, "required field missing", None)]
    given = _NOT_A_TABLE.match(str(exc)) if isinstance(exc, AttributeError) else None
    if given is not None:
        return [(path, f"expected a table, got {toml_kind(given.group(1))}", None)]
    message = str(exc) or type(exc).__name__
    return [(path, message, None)]


_NOT_A_TABLE = re.compile(r"^'(\w+)' object has no attribute '(?:keys|items)'$")
"""What structuring a table from a scalar raises (``tls = "x"``, ``tuning = 5``)."""
