"""``rivet install`` and ``rivet uninstall``: put plugin packages into, or take them out of,
the environment Rivet itself runs in, and say which backends that added or removed.

pip is run as ``sys.executable -m pip``: the interpreter running this command is the one
whose environment must change, wherever it lives (a pipx or ``uv tool`` venv, a project
venv, a container's system Python). pip's own configuration applies (``pip.conf``,
``PIP_INDEX_URL``, ``PIP_NO_INDEX``...). Afterwards the registry is rebuilt in a fresh
interpreter (``rivet plugins --json``): this process has the old modules of an upgraded or
removed plugin imported and importlib.metadata's view of the old distributions, and a new
interpreter sees exactly what the next ``rivet`` command will.

Nothing here is imported by ``rivet --help``; the registry and packaging are imported by the
handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rivet_core.errors import ExitCode, PluginError, RivetError, UsageError

if TYPE_CHECKING:
    from rivet_core.cli.common import Console

SELF = "rivet-cli"
ARCHIVES = (".whl", ".zip", ".tar.gz", ".tar.bz2", ".tgz")
_PIP = [sys.executable, "-m", "pip"]


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    install = commands.add_parser(
        "install", help="install plugin packages into Rivet's own environment",
        description="Run pip with the interpreter Rivet runs on (so it works wherever Rivet "
        "was installed: pipx, a venv, a container), then list what each package provides: "
        "its version, origin, plugin API range and the backends it added. A package that "
        "installs but registers no Rivet plugin, or whose plugin Rivet cannot use (built "
        "for another plugin API, failing to load), is reported with the fix: exit 5. pip's "
        "own configuration (pip.conf, PIP_INDEX_URL, PIP_NO_INDEX...) applies.")
    install.add_argument("packages", nargs="*", metavar="PKG",
                         help="what pip installs: a name ('rivet-foo', 'rivet-foo>=2'), a "
                              "wheel, an archive or a project directory")
    install.add_argument("-U", "--upgrade", action="store_true",
                         help="upgrade the packages named to the newest version allowed")
    install.add_argument("-e", "--editable", action="append", default=[], metavar="PATH",
                         help="install the project in PATH in editable mode, for plugin "
                              "development (repeatable)")
    install.set_defaults(handler=handle_install)

    uninstall = commands.add_parser(
        "uninstall", help="uninstall plugin packages from Rivet's own environment",
        description="Run `pip uninstall` with the interpreter Rivet runs on, then list the "
        "backends that went with each package. Only packages that register Rivet plugins "
        "are accepted, so Rivet itself and its dependencies stay.")
    uninstall.add_argument("packages", nargs="+", metavar="PKG",
                           help="the distribution name, as `rivet plugins` lists it")
    uninstall.add_argument("-y", "--yes", action="store_true",
                           help="do not ask for confirmation (needed without a terminal)")
    uninstall.set_defaults(handler=handle_uninstall)


def handle_install(args: argparse.Namespace, console: Console) -> int:
    if not args.packages and not args.editable:
        raise UsageError("nothing to install", hint="`rivet install PKG...` or "
                                                    "`rivet install -e PATH`")
    _require_pip()
    before = _registry_here()
    with tempfile.TemporaryDirectory(prefix="rivet-install-") as tmp:
        report = Path(tmp) / "report.json"
        command = [*_PIP, "install", "--disable-pip-version-check", "--report", str(report)]
        command += ["--upgrade"] if args.upgrade else []
        for path in args.editable:
            command += ["--editable", path]
        code = _run_pip([*command, *args.packages], console)
        if code != 0:
            raise RivetError(f"pip install exited {code}; see its output above",
                             hint="nothing Rivet loads changed unless pip says it installed "
                                  "something; `rivet plugins` shows what is there")
        installed = _read_report(report)
    after = _registry_fresh()
    wanted = _requested(installed, args.packages)
    changed = _changed(before, after) | set(wanted)
    for name in wanted:
        _print_requested(console, name, wanted[name], before, after)
    _print_backend_changes(console, before, after)
    _fail_on_trouble(changed, wanted, after)
    return ExitCode.OK


def handle_uninstall(args: argparse.Namespace, console: Console) -> int:
    from packaging.utils import canonicalize_name

    _require_pip()
    before = _registry_here()
    plugins = _by_name(before)
    for name in args.packages:
        canonical = canonicalize_name(name)
        if canonical == SELF:
            raise UsageError(
                f"{SELF} is Rivet itself; `rivet uninstall` removes plugin packages",
                hint=f"uninstall Rivet with the tool that installed it: `pipx uninstall "
                     f"{SELF}`, `uv tool uninstall {SELF}` or `pip uninstall {SELF}`")
        if canonical not in plugins:
            raise UsageError(_not_a_plugin(name), hint=_installed_plugins_hint(plugins))
    command = [*_PIP, "uninstall", "--disable-pip-version-check"]
    command += ["--yes"] if args.yes else []
    code = _run_pip([*command, *args.packages], console)
    if code != 0:
        raise RivetError(f"pip uninstall exited {code}; see its output above",
                         hint="`rivet plugins` shows what is still installed")
    after = _registry_fresh()
    remaining = _by_name(after)
    for name in args.packages:
        dist = plugins[canonicalize_name(name)]
        provided = _backends_of(dist)
        if canonicalize_name(name) in remaining:
            console.print(f"kept: {dist['name']} {dist['version']} (pip did not remove it)")
        else:
            console.print(f"uninstalled: {dist['name']} {dist['version']}"
                          + (f" ({provided})" if provided else ""))
    _print_backend_changes(console, before, after)
    return ExitCode.OK


# ------------------------------------------------------------------------------------ pip


def _require_pip() -> None:
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise RivetError(
            f"pip is not installed in the environment Rivet runs in ({sys.prefix})",
            hint="installed with `uv tool`? add plugins with `uv tool install rivet-cli "
                 "--with PKG`; otherwise `" + sys.executable + " -m ensurepip` adds pip")


def _run_pip(command: list[str], console: Console) -> int:
    """Run pip; its output (progress and questions, for people) goes to stderr. Its stdin
    is ours, so `pip uninstall` can ask for confirmation."""
    try:
        fd: int | None = console.err.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO)
        fd = None
    if fd is not None:
        console.err.flush()
        return subprocess.run(command, stdout=fd, stderr=fd, check=False).returncode
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    console.err.write(done.stdout)
    return done.returncode


def _read_report(path: Path) -> list[dict[str, Any]]:
    """What pip's installation report (``--report``) says it installed: name, version, and
    whether the command line asked for it."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    installed = []
    for item in document.get("install", []) if isinstance(document, dict) else []:
        metadata = item.get("metadata") or {}
        if isinstance(metadata.get("name"), str):
            installed.append({"name": metadata["name"], "version": metadata.get("version"),
                              "requested": bool(item.get("requested"))})
    return installed


# ------------------------------------------------------------------------------- registry


def _registry_here() -> dict[str, Any]:
    """``rivet plugins --json`` of this process, before pip changes anything."""
    from rivet_core.cli.plugins_cmd import as_json
    from rivet_core.plugins import build_registry

    return as_json(build_registry())


def _registry_fresh() -> dict[str, Any]:
    """``rivet plugins --json`` of a new interpreter, after pip changed the environment."""
    done = subprocess.run([sys.executable, "-m", "rivet_core.cli.main", "plugins", "--json"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    try:
        document = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RivetError(
            f"pip succeeded, but Rivet can no longer list its plugins (`rivet plugins "
            f"--json` exited {done.returncode}: {last})",
            hint="a package may have replaced one of Rivet's dependencies; `rivet "
                 "uninstall` the package, or reinstall rivet-cli") from None
    if not isinstance(document, dict):
        raise RivetError("`rivet plugins --json` printed no JSON object")
    return document


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from packaging.utils import canonicalize_name

    return {canonicalize_name(d["name"]): d for d in document["distributions"]}


def _backend_keys(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(b["kind"], b["name"], f"{b['distribution']} {b['version']}")
            for b in document["backends"]}


def _backends_of(dist: dict[str, Any]) -> str:
    return ", ".join(f"{b['kind']} {b['name']}" for b in dist["backends"])


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The plugin distributions pip added or changed (version or location)."""
    old = _by_name(before)
    return {name for name, dist in _by_name(after).items()
            if name not in old or (old[name]["version"], old[name]["location"])
            != (dist["version"], dist["location"])}


def _requested(installed: list[dict[str, Any]], packages: list[str]) -> dict[str, bool]:
    """The distributions the command line named, by canonical name, each with whether pip
    installed it now (False: it was already there). Paths and archives are known by pip's
    report; names also when pip found them already installed."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    wanted: dict[str, bool] = {canonicalize_name(i["name"]): True
                               for i in installed if i["requested"]}
    for package in packages:
        if package.lower().endswith(ARCHIVES) or _looks_like_path(package):
            continue
        try:
            name = canonicalize_name(Requirement(package).name)
        except InvalidRequirement:
            continue
        wanted.setdefault(name, any(canonicalize_name(i["name"]) == name for i in installed))
    return wanted


def _looks_like_path(package: str) -> bool:
    """Whether pip takes ``package`` for a path rather than a name (as pip decides it)."""
    return (os.sep in package or bool(os.altsep and os.altsep in package)
            or package.startswith("."))


# --------------------------------------------------------------------------------- output


def _print_requested(console: Console, name: str, installed_now: bool,
                     before: dict[str, Any], after: dict[str, Any]) -> None:
    from packaging.version import InvalidVersion, Version

    from rivet_core.cli.plugins_cmd import distribution_line, plugin_line

    dist = _by_name(after).get(name)
    if dist is None:
        return  # registers nothing: the error at the end says so
    old = _by_name(before).get(name)
    if not installed_now:
        state = "already installed"
    elif old is None:
        state = "installed"
    elif old["version"] == dist["version"]:
        state = "reinstalled"
    else:
        try:
            newer = Version(dist["version"]) > Version(old["version"])
        except InvalidVersion:
            newer = True
        state = f"{'upgraded' if newer else 'downgraded'} from {old['version']}"
    console.print(f"{state}: {distribution_line(dist)}")
    for plugin in dist["plugins"]:
        console.print(f"    {plugin_line(plugin, dist['backends'])}")


def _print_backend_changes(console: Console, before: dict[str, Any],
                           after: dict[str, Any]) -> None:
    old, new = _backend_keys(before), _backend_keys(after)
    for label, keys in (("added", new - old), ("removed", old - new)):
        if keys:
            console.print(f"{label}: " + ", ".join(
                f"{kind} {name} ({dist})" for kind, name, dist in sorted(keys)))
    if old == new:
        console.print("no backend added or removed")


def _fail_on_trouble(changed: set[str], wanted: dict[str, bool],
                     after: dict[str, Any]) -> None:
    """A PluginError for every named distribution that registers no plugin, and every
    changed one Rivet cannot use."""
    from importlib.metadata import PackageNotFoundError, version

    plugins = _by_name(after)
    messages, hints = [], []
    for name in wanted:
        if name not in plugins:
            try:
                label = f"{name} {version(name)}"
            except PackageNotFoundError:
                label = name
            messages.append(f"{label} is installed but registers no Rivet plugin (no entry "
                            "point in the 'rivet' group)")
            hints.append(f"`rivet uninstall -y {name}` removes it")
    for name in sorted(changed):
        dist = plugins.get(name)
        if dist is None or not dist["problems"]:
            continue
        for problem in dist["problems"]:
            messages.append(f"{dist['name']} {dist['version']} is installed but Rivet cannot "
                            f"use it: {problem['plugin']}: {problem['message']}")
            hints.append(f"`{problem['fix']}`" if problem["fix"] else
                         f"see `rivet plugins`; `rivet uninstall -y {dist['name']}` removes it")
    if messages:
        raise PluginError("; ".join(messages), hint="; ".join(dict.fromkeys(hints)))


def _not_a_plugin(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(name)
    except PackageNotFoundError:
        return f"{name} is not installed"
    return (f"{name} {installed} registers no Rivet plugin; `rivet uninstall` removes plugin "
            "packages only, so that Rivet's own dependencies stay")


def _installed_plugins_hint(plugins: dict[str, dict[str, Any]]) -> str:
    third_party = [f"{d['name']} {d['version']}" for name, d in sorted(plugins.items())
                   if d["origin"] != "built-in"]
    if not third_party:
        return "no plugin package is installed besides Rivet's built-in backends"
    return f"installed plugin packages: {', '.join(third_party)}"
