"""The reference tools' virtualenv (``bench/.venv-ref``), created and filled on demand.

The product's ``.venv`` never sees these packages. The set is ``bench/requirements-ref.txt``;
the env is rebuilt when that file changes (its digest is kept in a marker file inside the
env). If installing the whole set fails, each requirement is installed alone, and the ones
that still fail are returned with pip's error: the tools needing them are then reported as
failed with that error instead of being left out.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rivetbench.settings import REF_VENV, REQUIREMENTS_REF

MARKER = REF_VENV / "rivetbench-install.json"


def requirements(path: Path = REQUIREMENTS_REF) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def requirement_name(requirement: str) -> str:
    """``dlt[sql_database]==1.31.0`` -> ``dlt``."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()
            and "is ignored: it is neither a file nor a directory" not in line]
    return " / ".join(kept[-lines:])


def ensure(log: Callable[[str], None]) -> dict[str, str]:
    """Make sure the env exists and holds the requirements; returns ``{name: error}`` for
    every requirement that could not be installed."""
    digest = hashlib.sha256(REQUIREMENTS_REF.read_bytes()).hexdigest()
    if MARKER.exists():
        marker = json.loads(MARKER.read_text())
        if marker.get("digest") == digest:
            return dict(marker.get("failed", {}))
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating the reference tools' virtualenv {REF_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    log("installing the reference tools (bench/requirements-ref.txt) ...")
    result = subprocess.run([*pip, "-r", str(REQUIREMENTS_REF)], capture_output=True, text=True)
    failed: dict[str, str] = {}
    if result.returncode != 0:
        log("installing them together failed; trying one by one")
        for requirement in requirements():
            one = subprocess.run([*pip, requirement], capture_output=True, text=True)
            if one.returncode != 0:
                failed[requirement_name(requirement)] = _tail(one.stderr or one.stdout)
                log(f"  {requirement}: FAILED: {failed[requirement_name(requirement)]}")
    MARKER.write_text(json.dumps({"digest": digest, "failed": failed}, indent=2))
    return failed


def versions() -> dict[str, str]:
    """Installed versions of the requirements, as ``pip freeze`` names them."""
    python = REF_VENV / "bin" / "python"
    if not python.exists():
        return {}
    result = subprocess.run([str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True)
    wanted = {requirement_name(r).lower().replace("_", "-") for r in requirements()}
    found = {}
    for line in result.stdout.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            if name.lower().replace("_", "-") in wanted:
                found[name] = version
    return found
