"""``rivet install`` and ``rivet uninstall`` for real: the real pip, offline, in a virtual
environment each test makes, with the example plugin package and wheels built here.

The environment (:func:`fresh_environment`) is what a pipx or ``uv tool`` install of
rivet-cli is: rivet-cli and its dependencies, no plugin package. It is made offline in a
fraction of a second. The venv is created ``--without-pip`` by the interpreter running the
tests; its site-packages gets a ``.pth`` naming a directory of symlinks to every entry of
that interpreter's site-packages except the example plugin's, plus that site-packages'
other ``.pth`` files (the editable finder of rivet-cli, setuptools' distutils shim). So
rivet-cli, its dependencies, pip and setuptools are all importable, and pip installs into
the new venv (``sys.prefix``), never into the project's ``.venv``. Not
``--system-site-packages``: the base interpreter holds none of the dependencies, and the
project's ``.venv`` would bring the example plugin along, already installed.

pip runs with no index (``PIP_NO_INDEX``), no build isolation (setuptools from the test
environment builds the example) and no pip configuration of the machine
(``PIP_CONFIG_FILE=/dev/null``); ``PIP_FIND_LINKS`` points at the test's wheel directory, so
the fix a problem names (``rivet install --upgrade rivet-future``) is run as printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import attrs
import pytest

from rivet_core.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rivet-sqlite-jsonl"
EXAMPLE_NAMES = ("rivet_sqlite_jsonl", "rivet-sqlite-jsonl")
"""What of the test environment's site-packages belongs to the example package (its
dist-info, its editable finder and ``.pth``): left out of the fresh environment."""


@attrs.frozen
class Environment:
    """A fresh virtual environment with rivet-cli and no plugin package."""

    root: Path
    python: Path
    wheels: Path
    """Where the test puts the wheels it builds; pip's find-links."""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PIP_", "RIVET_", "PYTHON"))}
        # PIP_NO_BUILD_ISOLATION=0 *is* --no-build-isolation: pip reads "no-" options'
        # variables into the positive setting (pypa/pip#5735, kept for compatibility).
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
                   PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_FIND_LINKS=str(self.wheels),
                   PYTHONNOUSERSITE="1", PYTHONIOENCODING="utf-8", TZ="UTC")
        return env

    def rivet(self, *args: str, cwd: Path | None = None) -> Run:
        done = subprocess.run([str(self.python), "-m", "rivet_core.cli.main", *args],
                              cwd=cwd or self.root, env=self.env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=240, check=False)
        return Run(args, done.returncode, done.stdout, done.stderr)

    def plugins(self) -> dict[str, dict]:
        """The distributions of ``rivet plugins --json``, by name."""
        document = json.loads(self.rivet("plugins", "--json").ok().out)
        return {d["name"]: d for d in document["distributions"]}


@attrs.frozen
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def ok(self) -> Run:
        return self.expect(ExitCode.OK)

    def expect(self, code: int) -> Run:
        assert self.code == code, (f"$ rivet {' '.join(self.args)}: exit {self.code}, "
                                   f"expected {code}\n--- stdout\n{self.out}--- stderr\n"
                                   f"{self.err}")
        assert "Traceback" not in self.out + self.err
        return self


def _purelib(python: Path | str) -> Path:
    done = subprocess.run([str(python), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def fresh_environment(where: Path) -> Environment:
    """See the module docstring."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    ours, theirs = Path(sysconfig.get_paths()["purelib"]), _purelib(python)
    deps = where / "deps"
    deps.mkdir()
    pth = [str(deps)]
    for entry in sorted(ours.iterdir()):
        if any(name in entry.name for name in EXAMPLE_NAMES):
            continue
        if entry.suffix == ".pth":
            pth.append(entry.read_text())
        elif entry.name != "__pycache__":
            (deps / entry.name).symlink_to(entry)
    # One file, in this order: the directory first, then the lines that import from it
    # (.pth files are read in name order, and an import line needs its module on the path).
    (theirs / "00-rivet-test-deps.pth").write_text("\n".join(pth) + "\n")
    wheels = where / "wheels"
    wheels.mkdir()
    return Environment(root=where, python=python, wheels=wheels)


@pytest.fixture
def environment(tmp_path: Path) -> Environment:
    return fresh_environment(tmp_path)


def build_wheel(wheels: Path, dist: str, version: str, module: str, source: str, *,
                entry_point: bool = True) -> Path:
    """A pure-Python wheel of one module, written directly (no build backend needed)."""
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}.py": textwrap.dedent(source),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: rivet-tests\nRoot-Is-Purelib: "
                         "true\nTag: py3-none-any\n",
    }
    if entry_point:
        files[f"{info}/entry_points.txt"] = f"[rivet]\n{module} = {module}\n"
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}"
              for name, text in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = wheels / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def future_plugin(declaration: str) -> str:
    """A destination plugin declaring ``declaration``; its hook leaves a file behind when
    called, so a test can tell it was never called."""
    return f"""
        import pathlib
        import attrs
        from rivet_core.api import (DestinationCapabilities, DestinationSpec,
                                    WriteCommitProtocol, hookimpl)

        RIVET_PLUGIN_API = {declaration!r}

        @attrs.frozen
        class Options:
            path: str = "."

        @hookimpl
        def rivet_destinations():
            pathlib.Path("hook-was-called").touch()
            return [DestinationSpec(
                name="future", config_cls=Options, factory=lambda config, context: None,
                capabilities=DestinationCapabilities(
                    commit_protocol=WriteCommitProtocol.ATOMIC, idempotent_overwrite=True,
                    retry_safe=True, partial_write_risk=False))]
        """


FUTURE_CONFIG = """
[source]
type = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/test"

[[exports]]
name = "orders"
query = "SELECT 1 AS one"
format = "parquet"
[exports.destination]
type = "future"
"""


# -------------------------------------------------------------------------------- tests


def test_installing_the_example_editable_adds_its_backends_and_uninstalling_removes_them(
        environment: Environment, tmp_path: Path):
    assert "rivet-sqlite-jsonl" not in environment.plugins()
    source = tmp_path / "rivet-sqlite-jsonl"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "*.egg-info", "__pycache__", "tests", "output", "*.sqlite", ".rivet*"))

    installed = environment.rivet("install", "-e", str(source)).ok()
    assert installed.out.splitlines() == [
        f"installed: rivet-sqlite-jsonl 0.1.0  editable {source}  plugin API >=1.0,<2",
        "    sqlite_jsonl (rivet_sqlite_jsonl): rivet_formats, rivet_sources → source "
        "sqlite, format jsonl",
        "added: format jsonl (rivet-sqlite-jsonl 0.1.0), source sqlite (rivet-sqlite-jsonl "
        "0.1.0)",
    ]
    assert "Successfully installed rivet-sqlite-jsonl-0.1.0" in installed.err
    ours = environment.plugins()["rivet-sqlite-jsonl"]
    assert (ours["origin"], ours["location"], ours["plugin_api"]) == (
        "editable", str(source), ">=1.0,<2")
    assert {(b["kind"], b["name"]) for b in ours["backends"]} == {
        ("source", "sqlite"), ("format", "jsonl")}
    assert ours["problems"] == []

    # An export through both backends, by the environment's own Rivet.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("rivet.toml", "make_demo_db.py"):
        shutil.copy(EXAMPLE / "demo" / name, project / name)
    subprocess.run([str(environment.python), "make_demo_db.py"], cwd=project, check=True,
                   capture_output=True, env=environment.env())
    summary = json.loads(environment.rivet("run", "-c", "rivet.toml", "-e", "orders",
                                           "--json", cwd=project).ok().out)
    (export,) = summary["exports"]
    assert (export["status"], export["rows"]) == ("success", 200)
    (written,) = list((project / "output" / "orders").rglob("*.jsonl"))
    first = json.loads(written.read_text().splitlines()[0])
    assert first["id"] == 1 and isinstance(first["amount"], str)

    # Installing it again by name changes nothing, and says so.
    again = environment.rivet("install", "rivet-sqlite-jsonl").ok()
    assert again.out.splitlines()[0].startswith("already installed: rivet-sqlite-jsonl 0.1.0")
    assert again.out.splitlines()[-1] == "no backend added or removed"

    removed = environment.rivet("uninstall", "-y", "rivet-sqlite-jsonl").ok()
    assert removed.out.splitlines() == [
        "uninstalled: rivet-sqlite-jsonl 0.1.0 (source sqlite, format jsonl)",
        "removed: format jsonl (rivet-sqlite-jsonl 0.1.0), source sqlite (rivet-sqlite-jsonl "
        "0.1.0)",
    ]
    assert "rivet-sqlite-jsonl" not in environment.plugins()
    failed = environment.rivet("run", "-c", "rivet.toml", "-e", "orders", cwd=project)
    failed.expect(ExitCode.PLUGIN)
    assert "unknown source type 'sqlite'" in failed.err
    assert "`rivet install rivet-sqlite-jsonl`" in failed.err


def test_a_plugin_for_another_api_is_refused_with_a_fix_that_works(environment: Environment):
    build_wheel(environment.wheels, "rivet-future", "2.0.0", "rivet_future",
                future_plugin(">=2,<3"))
    refused = environment.rivet("install", "rivet-future").expect(ExitCode.PLUGIN)
    assert refused.out.splitlines()[0] == (
        "installed: rivet-future 2.0.0  third-party  plugin API >=2,<3")
    assert ("rivet: error: rivet-future 2.0.0 is installed but Rivet cannot use it: "
            "rivet_future (rivet-future 2.0.0): not loaded: it supports plugin API >=2,<3, "
            "and this Rivet runs plugin API 1.1") in refused.err
    assert "hint: `rivet install 'rivet-future<2.0.0'`" in refused.err

    listed = environment.rivet("plugins").ok()
    assert "    rivet_future (rivet_future): not loaded\n" in listed.out
    assert "  fix: rivet install 'rivet-future<2.0.0'\n" in listed.out
    (problem,) = environment.plugins()["rivet-future"]["problems"]
    assert problem["fix"] == "rivet install 'rivet-future<2.0.0'"

    (environment.root / "rivet.toml").write_text(FUTURE_CONFIG)
    needed = environment.rivet("check", "-c", "rivet.toml").expect(ExitCode.PLUGIN)
    assert "exports[0].destination.type: unknown destination type 'future'" in needed.err
    assert "not loaded: it supports plugin API >=2,<3" in needed.err
    assert "fix: `rivet install 'rivet-future<2.0.0'`" in needed.err
    assert not (environment.root / "hook-was-called").exists()

    # The fix, as printed: an earlier release, written for this API, from the wheel directory.
    build_wheel(environment.wheels, "rivet-future", "1.9.0", "rivet_future",
                future_plugin(">=1.0,<2"))
    fixed = environment.rivet("install", "rivet-future<2.0.0").ok()
    assert fixed.out.splitlines()[0] == (
        "downgraded from 2.0.0: rivet-future 1.9.0  third-party  plugin API >=1.0,<2")
    assert "added: destination future (rivet-future 1.9.0)" in fixed.out
    assert environment.plugins()["rivet-future"]["problems"] == []


def test_a_plugin_older_than_the_api_is_fixed_by_the_upgrade_it_names(environment: Environment):
    build_wheel(environment.wheels, "rivet-future", "0.5", "rivet_future",
                future_plugin("<1"))
    refused = environment.rivet("install", str(environment.wheels / "rivet_future-0.5-py3-"
                                               "none-any.whl")).expect(ExitCode.PLUGIN)
    assert "(the plugin predates this API)" in refused.err
    assert "hint: `rivet install --upgrade rivet-future`" in refused.err
    build_wheel(environment.wheels, "rivet-future", "1.0", "rivet_future",
                future_plugin(">=1.0,<2"))
    upgraded = environment.rivet("install", "--upgrade", "rivet-future").ok()
    assert upgraded.out.splitlines()[0] == (
        "upgraded from 0.5: rivet-future 1.0  third-party  plugin API >=1.0,<2")


def test_a_package_that_registers_nothing_says_so_and_exits_plugin(environment: Environment):
    wheel = build_wheel(environment.wheels, "not-a-plugin", "1.0", "not_a_plugin",
                        "VALUE = 1\n", entry_point=False)
    outcome = environment.rivet("install", str(wheel)).expect(ExitCode.PLUGIN)
    assert ("rivet: error: not-a-plugin 1.0 is installed but registers no Rivet plugin (no "
            "entry point in the 'rivet' group)") in outcome.err
    assert "hint: `rivet uninstall -y not-a-plugin` removes it" in outcome.err
    assert outcome.out.splitlines() == ["no backend added or removed"]
    refused = environment.rivet("uninstall", "-y", "not-a-plugin").expect(ExitCode.USAGE)
    assert "not-a-plugin 1.0 registers no Rivet plugin" in refused.err


def test_uninstall_refuses_rivet_itself_and_unknown_packages(environment: Environment):
    itself = environment.rivet("uninstall", "-y", "rivet-cli").expect(ExitCode.USAGE)
    assert "rivet-cli is Rivet itself" in itself.err
    unknown = environment.rivet("uninstall", "-y", "rivet-nope").expect(ExitCode.USAGE)
    assert "rivet-nope is not installed" in unknown.err


def test_a_failing_pip_is_a_run_failure_with_its_output(environment: Environment):
    outcome = environment.rivet("install", "rivet-does-not-exist").expect(ExitCode.RUN_FAILED)
    assert "No matching distribution found for rivet-does-not-exist" in outcome.err
    assert "rivet: error: pip install exited 1; see its output above" in outcome.err
