"""Property-based tests (Hypothesis) of the rule "no input, however hostile, produces a
traceback", on the two kinds of file Rivet reads:

- config files: generated TOML documents, built from the real config keys (core models,
  the postgres source, the local destination) and random ones, with values of every TOML
  type, fed to ``rivet check``: exit 0, 3, 4 or 5, and every config error names the file;
- run manifests and ``_SUCCESS`` markers: mutations of a manifest written by the real
  writer beside real data files (type swaps, deletions, insertions, deep nesting, huge
  numbers, unicode, NUL, broken bytes), fed to ``rivet validate``: exit 0 or 6.

Examples per property: ``RIVET_HYPOTHESIS_EXAMPLES`` (default 200: seconds per property);
CONTRIBUTING.md gives the long run. The seed is fixed, so a run is reproducible; no example
database is written.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from manifest_site import EXPORT, PARTS, RUN_ID, ManifestSite, build_site
from rivet_local.config import LocalOptions
from rivet_postgres.config import PostgresConfig

from rivet_core.cli.common import Console
from rivet_core.cli.main import main
from rivet_core.config.connection import TLSConfig
from rivet_core.config.models import (
    DestinationConfig,
    ExportConfig,
    FormatConfig,
    SourceConfig,
    Tuning,
)
from rivet_core.errors import ExitCode
from rivet_core.redact import forget_secrets
from rivet_core.runner.manifest import sha256, success_marker, success_name
from rivet_core.runner.modes import MODES

EXAMPLES = int(os.environ.get("RIVET_HYPOTHESIS_EXAMPLES") or 200)
settings.register_profile(
    "rivet",
    max_examples=EXAMPLES,
    deadline=None,  # one example runs the whole CLI; its time varies with the machine
    database=None,  # reproducible from the seed alone, and nothing written to the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = settings.get_profile("rivet")
SEED = 20261127
LONG_ENOUGH = pytest.mark.timeout(max(300, EXAMPLES // 10))
"""The suite's 300 s per test, or 0.1 s per example (they take 20-40 ms) in the long mode."""


@attrs.frozen
class Outcome:
    code: int
    out: str
    err: str


def rivet(*argv: str) -> Outcome:
    """The CLI in-process: an exception escapes, as the console script would print it as a
    traceback."""
    out, err = io.StringIO(), io.StringIO()
    forget_secrets()
    code = main(list(argv), Console(out=out, err=err))
    return Outcome(code=int(code), out=out.getvalue(), err=err.getvalue())


def assert_printable(outcome: Outcome) -> None:
    """The real stdout and stderr are UTF-8: a lone surrogate would raise there."""
    outcome.out.encode()
    outcome.err.encode()
    # A Python traceback, not the word: a config may name a source type "Traceback".
    assert "Traceback (most recent call last)" not in outcome.err


# ----------------------------------------------------------------------- a TOML writer


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(document: dict[str, Any]) -> str:
    """TOML whose parse is ``document``: top-level scalars, then ``[table]`` sections and
    ``[[array]]`` tables one level deep, every deeper value inline."""
    lines = []
    tables = []
    for key, value in document.items():
        if isinstance(value, dict) or (isinstance(value, list) and value
                                       and all(isinstance(v, dict) for v in value)):
            tables.append((key, value))
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, value in tables:
        for table in value if isinstance(value, list) else [value]:
            lines.append(f"\n[[{toml_key(key)}]]" if isinstance(value, list)
                         else f"\n[{toml_key(key)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_the_toml_writer_round_trips():
    import tomllib

    document = {"a": 1, "b": "x\x00\"\\\n", "t": {"f": float("inf"), "d": dt.date(2024, 1, 2)},
                "arr": [{"k": [1, "2"]}, {"k": {"x y": None is None}}]}
    assert tomllib.loads(toml_document(document)) == document


# ------------------------------------------------------------------ config documents


def _field_names(*classes: type) -> list[str]:
    # ``options`` holds a plugin table's own keys: it is not a key itself.
    return sorted({f.name for cls in classes for f in attrs.fields(cls)} - {"options"})


REAL_KEYS = _field_names(ExportConfig, Tuning, SourceConfig, FormatConfig, DestinationConfig,
                         PostgresConfig, TLSConfig, LocalOptions)
PLAUSIBLE_STRINGS = [
    "postgres", "mysql", "parquet", "csv", "local", "stdout", "s3", "gcs", "sqlite",
    *MODES, "single_column", "coalesce", "fail", "include", "exclude", "timestamp", "unix",
    "fast", "balanced", "safe", "none", "compact", "zstd", "gzip", "snappy",
    "nums", "id", "SELECT 1 AS id", "public.t", "t", "q.sql", "../q.sql", "/etc/passwd",
    "./output/{export}", "./o/{run_id}/{date}", "256MB", "1GB", "12XB", "5m", "30s",
    "decimal(18,4)", "text", "postgresql://u:secret@127.0.0.1:1/db", "RIVET_UNSET_VAR",
    "${RIVET_UNSET_VAR}", "${HOME}", "$${x}", "${", "", " ", "a\x00b", "\ud7ff\U0010ffff",
    "x" * 300,
]
TEXT = st.text(max_size=20) | st.sampled_from(PLAUSIBLE_STRINGS)
KEYS = st.sampled_from(REAL_KEYS) | st.text(min_size=1, max_size=12)
TOML_SCALARS = st.one_of(
    TEXT,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-3, max_value=300),
    st.floats(),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.times(),
)


def _toml_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4)


TOML_VALUES = st.recursive(TOML_SCALARS, _toml_containers, max_leaves=12)
PLAUSIBLE_VALUES = st.one_of(
    st.sampled_from(PLAUSIBLE_STRINGS), st.integers(-1, 100), st.booleans(),
    st.sampled_from([0.0, 0.5, 1e-9, 1e300, float("inf"), float("nan"), 2**63 - 1]),
)
"""Values a real key takes, or nearly: they get past structuring to the rules and the
planner more often than random ones."""

VALID: dict[str, Any] = {
    "source": {"type": "postgres", "url": "postgresql://nobody@127.0.0.1:1/never"},
    "exports": [{"name": "nums", "query": "SELECT 1 AS id", "format": "csv",
                 "destination": {"type": "local", "path": "./output/{export}"}}],
}
STREAMED: dict[str, Any] = {
    "source": {"type": "postgres", "url": "postgresql://nobody@127.0.0.1:1/never"},
    "exports": [{"name": "nums", "table": "public.t", "format": "parquet",
                 "max_file_size": "1MB", "destination": {"type": "stdout"}}],
}
"""Rejected by the planner (stdout cannot be split into parts): edits reach exit 4 too."""


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if isinstance(value, dict | list) else []
    children = (value.items() if isinstance(value, dict)
                else enumerate(value) if isinstance(value, list) else ())
    for key, child in children:
        found += _containers(child, (*path, key))
    return found


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


KEY_VALUES: dict[str, list[Any]] = {
    "mode": list(MODES),
    "type": ["postgres", "mysql", "parquet", "csv", "local", "stdout", "s3"],
    "format": ["parquet", "csv", {"type": "csv"}],
    "destination": [{"type": "stdout"}, {"type": "local"}],
    "compression": ["zstd", "gzip", "snappy", "none", "brotli"],
    "compression_level": [1, 9, 22, 0],
    "cursor_column": ["id"], "chunk_column": ["id"], "time_column": ["ts"],
    "chunk_size": [1, 1000], "chunk_count": [1, 4], "days_window": [1, 7],
    "parallel": [1, 2, 4], "max_file_size": ["1MB", 1024, "0B"], "cursor_lag": ["5m", 30],
    "table": ["public.t", "t"], "query_file": ["q.sql"], "chunk_checkpoint": [True],
    "tuning": [{"batch_size": 10}, {"profile": "safe"}], "columns": [{"id": "int64"}],
}
"""Values of some keys that pass structuring, so that rules and planner see them."""
TABLE_KEYS = {
    "root": ["source", "exports"],
    "source": _field_names(SourceConfig, PostgresConfig),
    "tls": _field_names(TLSConfig),
    "export": _field_names(ExportConfig),
    "destination": _field_names(DestinationConfig, LocalOptions),
    "tuning": _field_names(Tuning),
}


def _table(path: tuple[Any, ...]) -> str:
    """Which table of the config ``path`` is, judged by its last keys."""
    if not path:
        return "root"
    if path[-1] in TABLE_KEYS:
        return str(path[-1])
    return "export" if path[0] == "exports" and len(path) == 2 else "other"


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly a valid config edited a few times: a value replaced (by a plausible one or
    anything), a key removed, a key of that table or any key added, an export appended;
    sometimes a document of random keys and values."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.dictionaries(KEYS | st.sampled_from(["source", "exports"]),
                                    TOML_VALUES, max_size=5))
    document = copy.deepcopy(draw(st.sampled_from([VALID, VALID, STREAMED])))
    values = PLAUSIBLE_VALUES | TOML_VALUES
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4]))):
        containers = _containers(document)
        tables = [c for c in containers if c not in ((), ("exports",))]
        # Editing the top level or the exports array breaks the whole document: rarely.
        rarely = not tables or draw(st.integers(0, 7)) == 0
        path = draw(st.sampled_from(containers if rarely else tables))
        target = _at(document, path)
        if isinstance(target, list):
            replace: bool = draw(st.booleans())
            if target and replace:
                target[draw(st.integers(0, len(target) - 1))] = draw(values)
            else:
                target.append(draw(values | st.just(VALID["exports"][0]).map(copy.deepcopy)))
            continue
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add", "add",
                                          "add-any"]))
        if operation in ("replace", "delete") and target:
            key = draw(st.sampled_from(sorted(target)))
            if operation == "delete":
                del target[key]
            else:
                target[key] = draw(values)
        else:
            own = TABLE_KEYS.get(_table(path), REAL_KEYS)
            key = draw(KEYS if operation == "add-any" else st.sampled_from(own))
            # A copy: the document is edited further, and KEY_VALUES must stay as it is
            # for every example (Hypothesis replays them).
            plausible = st.sampled_from(KEY_VALUES.get(key, [None])).map(copy.deepcopy)
            target[key] = draw(plausible | values if key in KEY_VALUES else values)
    return document


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("config")
    (directory / "q.sql").write_text("SELECT 1 AS id")
    return directory


@LONG_ENOUGH
@seed(SEED)
@PROFILE
@given(document=config_documents())
def test_check_gives_any_config_document_an_exit_code_and_no_traceback(config_dir, document):
    config = config_dir / "rivet.toml"
    config.write_text(toml_document(document), encoding="utf-8")
    outcome = rivet("check", "-c", str(config))
    event(f"exit {outcome.code}")  # the spread shows in --hypothesis-show-statistics
    assert outcome.code in {ExitCode.OK, ExitCode.CONFIG, ExitCode.PLAN_REJECTED,
                            ExitCode.PLUGIN}, outcome
    assert_printable(outcome)
    errors = [line for line in outcome.err.splitlines()
              if line.startswith("rivet: config error: ")]
    assert all("rivet.toml" in line for line in errors), outcome.err
    if outcome.code in (ExitCode.CONFIG, ExitCode.PLUGIN):
        assert errors, outcome.err


# ----------------------------------------------------------- manifests and markers

JSON_TEXT = st.text(max_size=20) | st.text(
    st.characters(codec=None, categories=["Cs", "Cc", "Co", "Zl"]), max_size=5)
PLAUSIBLE_JSON = st.sampled_from([
    RUN_ID, "20200101T000000Z-000000", EXPORT, "other", "success", "failed", "skipped",
    "running", *MODES, *PARTS, sha256(b""), sha256(b"").upper(), "a\x00b", "../x", "/x",
    "", 0, 1, 3, 6, 18, -1, 2**63 - 1, 2**63, 2**64 + 1, 1.0, 3.0, True, False, None,
])
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False), JSON_TEXT, PLAUSIBLE_JSON,
)
JSON_KEYS = JSON_TEXT | st.sampled_from(["run_id", "status", "mode", "files", "name", "rows",
                                         "bytes", "sha256", "totals", "manifest_sha256"])


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=4)


JSON_VALUES = st.recursive(JSON_SCALARS, _json_containers, max_leaves=10)
SENTINEL = "\x00rivet-raw-token\x00"
"""A leaf replaced, after encoding, by a raw token JSON values cannot express."""
RAW_TOKENS = st.one_of(
    st.integers(20, 6000).map(lambda n: "9" * n),
    st.integers(20, 6000).map(lambda n: "-" + "1" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "1E2", "0.5e-400"]),
    st.sampled_from([10, 900, 1100, 5000, 100_000]).map(lambda n: "[" * n + "]" * n),
    st.sampled_from([10, 900, 5000, 100_000]).map(lambda n: '{"a":' * n + "1" + "}" * n),
)


def _leaves_and_containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    children = (value.items() if isinstance(value, dict)
                else enumerate(value) if isinstance(value, list) else ())
    for key, child in children:
        found += _leaves_and_containers(child, (*path, key))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _at(document, path[:-1])[path[-1]] = value
    return document


def _recount(document: Any) -> None:
    """Make a manifest's totals add up again where they can, as a careful forger would, so
    that the checks behind the totals (marker, sizes, checksums, unlisted files) are reached
    too. Booleans are added as Python adds them."""
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        return
    files = document["files"]
    if not all(isinstance(f, dict) for f in files):
        return
    totals = document["totals"] if isinstance(document.get("totals"), dict) else {}
    totals["files"] = len(files)
    for key in ("rows", "bytes"):
        values = [f.get(key) for f in files]
        if all(isinstance(v, int | float) for v in values):
            totals[key] = sum(values)
    document["totals"] = totals


@st.composite
def mutated_json(draw: st.DrawFn, document: Any) -> bytes:
    """``document`` changed a few times (a value swapped for another type, a key or item
    removed, one added), encoded one way or another, maybe broken at the byte level."""
    document = copy.deepcopy(document)
    raw_token = None
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(_leaves_and_containers(document)))
        operation = draw(st.sampled_from(["swap", "delete", "insert", "raw", "entry"]))
        entries = document.get("files") if isinstance(document, dict) else None
        if operation == "entry" and isinstance(entries, list) and entries:
            # A plausible value in a file entry: the size, checksum and listing checks.
            entry = draw(st.sampled_from(entries))
            if isinstance(entry, dict):
                entry[draw(st.sampled_from(["name", "rows", "bytes", "sha256"]))] = \
                    draw(PLAUSIBLE_JSON)
        elif operation == "delete" and path:
            del _at(document, path[:-1])[path[-1]]
        elif operation == "insert":
            target = _at(document, path)
            if isinstance(target, dict):
                target[draw(JSON_KEYS)] = draw(JSON_VALUES)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(JSON_VALUES))
        elif operation == "raw" and raw_token is None:
            raw_token = draw(RAW_TOKENS)
            document = _replace(document, path, SENTINEL)
        else:
            document = _replace(document, path, draw(JSON_VALUES))
    if draw(st.booleans()):
        _recount(document)
    text = json.dumps(document, indent=draw(st.sampled_from([None, 2])),
                      ensure_ascii=draw(st.booleans()))
    if raw_token is not None:
        text = text.replace(json.dumps(SENTINEL), raw_token)
    # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, as in a hostile file.
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)):
        return data
    damage: Callable[[bytes], bytes] = draw(st.sampled_from([
        lambda b: b[: len(b) // 2],
        lambda b: b"\xef\xbb\xbf" + b,
        lambda b: b.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass"),
        lambda b: b.replace(b":", b"\x00:", 1),
        lambda b: b.replace(b'"', b"\xff", 1),
    ]))
    return damage(data)


@st.composite
def manifests_and_markers(draw: st.DrawFn, site: ManifestSite) -> tuple[bytes, bytes | None]:
    """New bytes for ``manifest.json`` and ``_SUCCESS`` (None: no marker)."""
    if draw(st.integers(0, 9)) == 0:
        manifest = draw(st.binary(max_size=200))
    else:
        manifest = draw(mutated_json(site.document()))
    vouching = {"run_id": RUN_ID, "manifest_sha256": sha256(manifest)}
    marker = draw(st.one_of(
        st.just(success_marker(RUN_ID, manifest)),  # vouches: the manifest is judged
        st.just(success_marker(RUN_ID, site.manifest)),  # the original run's
        st.none(),
        mutated_json(vouching),
        st.binary(max_size=64),
    ))
    return manifest, marker


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> ManifestSite:
    return build_site(tmp_path_factory.mktemp("validate"))


@LONG_ENOUGH
@seed(SEED)
@PROFILE
@given(data=st.data())
def test_validate_gives_any_manifest_and_marker_findings_and_no_traceback(site, data):
    manifest, marker = data.draw(manifests_and_markers(site))
    site.write(manifest, marker if marker is not None else b"")
    if marker is None:
        (site.directory / success_name(EXPORT)).unlink()
    as_json = data.draw(st.booleans())
    outcome = rivet("validate", "-c", str(site.config), *(["--json"] if as_json else []))
    event(f"exit {outcome.code}")
    assert outcome.code in {ExitCode.OK, ExitCode.CHECK_FAILED}, outcome
    assert_printable(outcome)
    if as_json:
        (export,) = json.loads(outcome.out)["exports"]
        assert (export["status"] == "passed") == (outcome.code == ExitCode.OK)
        for kind in sorted({f["kind"] for f in export["findings"]}):
            event(f"finding {kind}")
    if outcome.code == ExitCode.OK:
        # Whatever else was changed, a manifest that passes describes exactly the real files.
        files = json.loads(manifest)["files"]
        assert {f["name"]: (f["bytes"], f["sha256"]) for f in files} == \
            {name: (len(data), sha256(data)) for name, data in PARTS.items()}
