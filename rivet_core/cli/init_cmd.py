"""``rivet init``: survey a live database and write a commented config that runs as written.

The source is built from a minimal ``[source]`` table (the source type and the environment
variable holding its URL, or the keys ``--source-option`` gives) through the registry, as
every command builds it, and surveyed read-only (:mod:`rivet_core.introspect`); each
table's mode is chosen and the TOML rendered by :mod:`rivet_core.scaffold`. Before the file
is written it is loaded and planned like ``rivet check`` does: a scaffold ``rivet check``
would reject is never written. ``--discover`` prints the findings as JSON instead.

The config never holds a secret: the URL stays in its environment variable, and a
``--source-option`` naming a password or a URL is refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from rivet_core.cli.common import Console, positive_int
from rivet_core.errors import ConfigError, ExitCode, RivetError, UsageError

if TYPE_CHECKING:
    from rivet_core.introspect import Survey
    from rivet_core.plugins import Registry
    from rivet_core.scaffold import Suggestion, Target, Thresholds
    from rivet_core.specs import SourceSpec

DEFAULT_URL_ENV = "DATABASE_URL"
SECRET_KEYS = frozenset({"url", "password"})
"""``[source]`` keys that hold a secret as written: the scaffold names a variable instead."""

DESCRIPTION = """\
Connect to a database through its source plugin, survey its tables (estimated rows and
size, primary key, indexed timestamp and integer columns, columns without a faithful Arrow
type) and write a commented config with one export per table that `rivet check` accepts
and `rivet run` runs as written. Each export says why it got its mode:

  full         small tables (at most --big-rows estimated rows and 1 GiB), views
  incremental  big tables with an indexed update-time column (updated_at, ON UPDATE
               CURRENT_TIMESTAMP), cursor_lag 5m
  chunked      big tables with an integer key, --chunk-size keys per chunk, checkpointed
               (2 chunks at once from 10M rows, 4 from 100M)

The URL is read from the environment variable --source-url-env names, now and at run
time; the config names the variable, never the secret. Nothing is written to the database.

examples:
  rivet init --type postgres --schema sales --s3-bucket acme-exports
  rivet init -c - --type mysql --table orders --table customers
  rivet init --type postgres --discover > findings.json
"""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "init", help="survey a database and write a config scaffold that runs as written",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="rivet.toml", metavar="PATH",
                        help="file to write (default: ./rivet.toml; - for stdout)")
    parser.add_argument("--type", required=True, dest="source_type", metavar="TYPE",
                        help="source type: postgres, mysql, or an installed plugin's")
    parser.add_argument("--source-url-env", metavar="VAR",
                        help="environment variable holding the connection URL (default "
                             f"{DEFAULT_URL_ENV}); the config names it as url_env")
    parser.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                        help="another [source] key, e.g. for a source configured by a path "
                             "(sqlite: path=shop.db); never a password or a URL "
                             "(repeatable)")
    parser.add_argument("--schema", metavar="NAME",
                        help="schema to survey (MySQL: the database); default: the "
                             "source's (PostgreSQL: every user schema; MySQL: the URL's "
                             "database)")
    parser.add_argument("--table", action="append", dest="tables", metavar="NAME",
                        help="only this table, `name` or `schema.name` (repeatable)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--path", metavar="DIR",
                       help="write files under DIR/<export> on local disk (default: "
                            "./output)")
    where.add_argument("--s3-bucket", metavar="BUCKET", help="write to this S3 bucket")
    where.add_argument("--gcs-bucket", metavar="BUCKET", help="write to this GCS bucket")
    parser.add_argument("--s3-region", metavar="REGION", help="with --s3-bucket: its region")
    parser.add_argument("--gcs-credentials-file", metavar="PATH",
                        help="with --gcs-bucket: service account key file (default: the "
                             "Google default chain)")
    parser.add_argument("--format", default="parquet", metavar="FORMAT",
                        help="file format of every export: parquet (default) or csv")
    parser.add_argument("--big-rows", type=positive_int, metavar="N",
                        help="a table with more estimated rows than N is big (default "
                             "1000000)")
    parser.add_argument("--chunk-size", type=positive_int, metavar="N",
                        help="keys per chunk of a chunked export (default 100000)")
    parser.add_argument("--discover", action="store_true",
                        help="print the findings as JSON on stdout; write no config")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    from rivet_core.backends import SourceContext
    from rivet_core.dialect import SupportsServerTime
    from rivet_core.introspect import survey
    from rivet_core.plugins import build_registry
    from rivet_core.scaffold import Thresholds, export_names, suggest

    output = None if args.config == "-" else Path(args.config)
    target = _target(args)
    if output is not None and output.exists() and not args.force and not args.discover:
        raise UsageError(f"{output} already exists",
                         hint="pass --force to replace it, or -c - to print the config")
    if output is not None and not output.resolve().parent.is_dir():
        raise UsageError(f"directory {output.resolve().parent} does not exist")
    registry = build_registry()
    spec: SourceSpec = registry.get("source", args.source_type).spec
    registry.get("format", args.format)
    config_dir = (output.resolve().parent if output is not None else Path.cwd())
    source_keys, env = _source_keys(spec, args)
    options = _source_options(spec, source_keys, config_dir)
    limits = Thresholds(**{k: v for k, v in (("big_rows", args.big_rows),
                                             ("chunk_size", args.chunk_size)) if v})

    with spec.factory(options, SourceContext(config_dir=config_dir)) as source:
        console.say(f"rivet init: surveying {source.display_name()}"
                    + (f", schema {args.schema!r}" if args.schema else "") + " …")
        found = survey(source, spec.dialect, source_type=spec.name, schema=args.schema,
                       tables=args.tables or ())
    server_time = isinstance(spec.dialect, SupportsServerTime)
    suggestions = [suggest(t, limits, server_time=server_time) for t in found.tables]
    names = export_names(found.tables)
    if args.discover:
        console.json(discovery(found, suggestions, names, limits))
        return ExitCode.OK
    if not any(t.error is None for t in found.tables):
        raise RivetError("no table to export: " + (
            "; ".join(f"{t.qualified}: {t.error}" for t in found.tables)
            or "the schema holds no table"),
            hint="check --schema and --table, and the grants of the user connecting")
    text = _render(found, source_keys, suggestions, names, target, args, limits, env, output)
    _check(text, output, config_dir, registry)
    if output is None:
        console.out.write(text)
    _summary(console, found, suggestions, names, output)
    return ExitCode.OK


# ------------------------------------------------------------------------------ arguments


def _target(args: argparse.Namespace) -> Target:
    from rivet_core.scaffold import Target

    if args.s3_region and not args.s3_bucket:
        raise UsageError("--s3-region applies to --s3-bucket")
    if args.gcs_credentials_file and not args.gcs_bucket:
        raise UsageError("--gcs-credentials-file applies to --gcs-bucket")
    if args.s3_bucket:
        keys: dict[str, Any] = {"bucket": args.s3_bucket, "prefix": "{export}/{run_id}"}
        if args.s3_region:
            keys["region"] = args.s3_region
        return Target(type="s3", keys=keys)
    if args.gcs_bucket:
        keys = {"bucket": args.gcs_bucket, "prefix": "{export}/{run_id}"}
        if args.gcs_credentials_file:
            keys["credentials_file"] = args.gcs_credentials_file
        return Target(type="gcs", keys=keys)
    directory = (args.path or "./output").rstrip("/") or "/"
    # A directory per run: a full snapshot's files never sit beside an earlier run's, which
    # a reader of the prefix would read too (`rivet validate` reports that).
    return Target(type="local",
                  keys={"path": f"{directory.rstrip('/')}/{{export}}/{{run_id}}"})


def _source_keys(spec: SourceSpec, args: argparse.Namespace) -> tuple[dict[str, Any],
                                                                         str | None]:
    """The ``[source]`` table of the scaffold, and the variable holding the URL (None when
    the source is not configured by one)."""
    fields = {f.name for f in attrs.fields(spec.config_cls)} \
        if attrs.has(spec.config_cls) else set()
    keys: dict[str, Any] = {"type": spec.name}
    given = dict(_option(item) for item in args.source_option)
    for key in given:
        if key in SECRET_KEYS or key.endswith("password"):
            raise UsageError(f"--source-option {key}=…: the config must not hold a secret",
                             hint="put the URL in an environment variable and name it with "
                                  "--source-url-env (or password_env=VAR for a password)")
    env = None
    if "url_env" in fields and not given.keys() & {"url_env", "url_file", "host"}:
        env = args.source_url_env or DEFAULT_URL_ENV
        if env not in os.environ:
            raise UsageError(f"--source-url-env {env!r} is not set in the environment",
                             hint=f"export {env}=<connection URL>: init connects with it, "
                                  "and the config names only the variable")
        keys["url_env"] = env
    elif args.source_url_env is not None and "url_env" not in fields:
        raise UsageError(f"source {spec.name!r} is not configured by a URL",
                         hint="its keys: " + (", ".join(sorted(fields)) or "none")
                              + "; give them with --source-option KEY=VALUE")
    return {**keys, **given}, env


def _option(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--source-option expects KEY=VALUE, got {item!r}")
    value: Any = text
    if text.lower() in ("true", "false"):
        value = text.lower() == "true"
    elif text.isdigit():
        value = int(text)
    return key.strip(), value


def _source_options(spec: SourceSpec, keys: dict[str, Any], config_dir: Path) -> Any:
    """The plugin's config object for ``keys``, checked as the loader checks it."""
    import cattrs

    from rivet_core.config.converter import flatten, make_converter
    from rivet_core.config.models import ChecksConfig, ChecksReferences

    rest = {k: v for k, v in keys.items() if k != "type"}
    try:
        options: Any = make_converter().structure(rest, spec.config_cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        problems = "; ".join(f"{path or 'source'}: {message}"
                             for path, message, _ in flatten(exc, "source"))
        raise UsageError(f"cannot configure a {spec.name!r} source: {problems}") from None
    issues: list[tuple[str, str]] = []
    if isinstance(options, ChecksConfig):
        issues += options.config_issues(config_dir)
    if isinstance(options, ChecksReferences):
        issues += options.reference_issues(config_dir)
    if issues:
        raise UsageError(f"cannot configure a {spec.name!r} source: "
                         + "; ".join(f"source.{key}: {message}" for key, message in issues))
    return options


# ------------------------------------------------------------------------------- output


def _render(found: Survey, source_keys: dict[str, Any], suggestions: list[Suggestion],
            names: list[str], target: Target, args: argparse.Namespace, limits: Thresholds,
            env: str | None, output: Path | None) -> str:
    from rivet_core.scaffold import render

    name = output.name if output is not None else "rivet.toml"
    return render(found, source=source_keys, suggestions=suggestions, names=names,
                  target=target, format=args.format, limits=limits, config_name=name,
                  env=env, now=dt.datetime.now(dt.UTC))


def _check(text: str, output: Path | None, config_dir: Path, registry: Registry) -> None:
    """Load and plan ``text`` as ``rivet check`` would, from a file beside ``output``
    (relative paths resolve the same), then move it into place; nothing is written when
    the check fails."""
    from rivet_core.config.loader import load_config
    from rivet_core.planner import build_plan

    directory = config_dir if os.access(config_dir, os.W_OK) or output is not None \
        else Path(tempfile.gettempdir())
    handle, name = tempfile.mkstemp(prefix=".rivet-init-", suffix=".toml", dir=directory)
    temp = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        try:
            plan = build_plan(load_config(temp, registry), registry)
        except ConfigError as exc:
            raise RivetError("the generated config does not load (a bug in rivet init): "
                             + "; ".join(i.render() for i in exc.issues)) from None
        if plan.rejected():
            raise RivetError("rivet check would reject the generated config (a bug in "
                             "rivet init): " + "; ".join(d.render() for d in plan.rejected()))
        if output is not None:
            os.replace(temp, output)
    finally:
        temp.unlink(missing_ok=True)


def _summary(console: Console, found: Survey, suggestions: list[Suggestion],
             names: list[str], output: Path | None) -> None:
    from rivet_core.scaffold import size_text

    width = max((len(n) for n in names), default=0)
    for table, suggestion, name in zip(found.tables, suggestions, names, strict=True):
        if table.error is not None:
            console.say(f"  {name.ljust(width)}  skipped      {table.error}")
            continue
        detail = ", ".join(f"{k} {v}" for k, v in suggestion.keys.items()
                           if k in ("cursor_column", "chunk_column"))
        extra = [f"{len(table.casts)} column(s) cast"] if table.casts else []
        extra += [f"{len(table.left_out)} column(s) LEFT OUT"] if table.left_out else []
        console.say(f"  {name.ljust(width)}  {suggestion.mode:<11}  {size_text(table)}"
                    + (f"; {detail}" if detail else "")
                    + (f"; {', '.join(extra)}" if extra else ""))
    for note in found.missing:
        console.say(f"  note: {note}")
    exports = sum(t.error is None for t in found.tables)
    if output is None:
        console.say(f"printed {exports} export(s); rivet check accepts them")
        console.say("next: save it as rivet.toml, review it, then rivet doctor -c rivet.toml")
        return
    console.say(f"wrote {output} ({exports} export(s); rivet check accepts it)")
    console.say(f"next: review it, then rivet doctor -c {output}, and rivet run -c {output}")


def discovery(found: Survey, suggestions: list[Suggestion], names: list[str],
              limits: Thresholds) -> dict[str, Any]:
    """The ``--discover`` document."""
    from rivet_core.scaffold import chunk_key, cursor_candidates

    return {
        "source": {"type": found.source_type, "location": found.location,
                   "dialect": found.dialect, "schema": found.schema},
        "thresholds": attrs.asdict(limits),
        "missing": found.missing,
        "tables": [
            {**table.as_dict(), "export": name,
             "cursor_candidates": [c.as_dict() for c in cursor_candidates(table)],
             "chunk_key": chunk_key(table),
             "suggestion": suggestion.as_dict()}
            for table, suggestion, name in zip(found.tables, suggestions, names, strict=True)
        ],
    }
