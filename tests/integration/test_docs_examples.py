"""The example runs of docs/cli.md and docs/operating.md are real: each page's ``console``
blocks run, in page order, through the real ``rivet`` in a copy of ``examples/operating/``
against the local PostgreSQL, and print what the page shows.

**The block format** (also described in docs/operating.md, "About the examples"). A fenced
block whose info string is ``console`` holds commands and their output:

- a line starting with ``$ `` is a command, run by ``bash -c`` in the project directory
  with ``DATABASE_URL`` set and the tested ``rivet`` first on ``PATH``; a line ending with
  ``\\`` continues on the next line;
- the command is expected to exit 0, or the code a trailing ``# exit N`` names (a shell
  comment, so the line still runs as written when pasted);
- the lines up to the next command are its output, stdout and stderr together as a
  terminal shows them, and must be exactly that output, line by line, except that:

  - a line holding only ``…`` stands for any number of lines (none included);
  - ``…`` within a line stands for any text in it;
  - placeholders stand for what changes from run to run (:data:`PLACEHOLDERS`): ``<run_id>``,
    ``<time>``, ``<date>``, ``<n>``, ``<size>``, ``<duration>``, ``<sha256>``, ``<version>``;
    ``<project>`` is the project directory;
  - trailing spaces and trailing blank lines do not count.

A command shown without output lines must print nothing. The blocks of one page share one
project, in order, so a page tells one story: ``setup.sql`` is loaded afresh for each page.
Every mismatch of a page is reported at once, each with the real output to compare.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "operating"
EXAMPLE_FILES = ["setup.sql", "rivet.toml", "nightly.sh"]
"""The project, without what running it in place leaves there (output, state, reports)."""
PAGES = ["docs/cli.md", "docs/operating.md"]
DOCUMENTED_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("RIVET_TEST_PG_URL", DOCUMENTED_URL)

PLACEHOLDERS = {
    "<run_id>": r"\d{8}T\d{6}Z-[0-9a-f]{6}",
    "<time>": r"(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?"
              r"|\d{8}T\d{6}Z)",
    "<date>": r"\d{4}-\d{2}-\d{2}",
    "<n>": r"-?\d[\d,]*(?:\.\d+)?",
    "<size>": r"\d[\d,]*(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)",
    "<duration>": r"\d+(?:\.\d+)? ?(?:ms|s|min|h)",
    "<sha256>": r"[0-9a-f]{8,64}…?",
    "<version>": r"\d+\.\d+(?:\.\d+)?[\w.+-]*",
}
"""What each placeholder of an example's output stands for."""

_TOKEN = re.compile("|".join(re.escape(p) for p in [*PLACEHOLDERS, "…"]))
_EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")


@attrs.frozen
class Step:
    """One ``$ command`` of a page and the output it shows."""

    page: str
    line: int
    command: str
    exit_code: int
    shown: tuple[str, ...]


def page_steps(page: str, text: str) -> list[Step]:
    """Every command of ``text``'s ``console`` blocks, in order."""
    steps: list[Step] = []
    command: list[str] = []
    shown: list[str] = []
    start, in_block, continued = 0, False, False
    for number, line in enumerate(text.splitlines(), start=1):
        if not in_block:
            in_block = line.strip() == "```console"
            continue
        if line.strip() == "```" and not continued:
            if command:
                steps.append(_step(page, start, command, shown))
            command, shown, in_block = [], [], False
        elif continued:
            command.append(line)
        elif line.startswith("$ "):
            if command:
                steps.append(_step(page, start, command, shown))
            command, shown, start = [line[2:]], [], number
        elif command:
            shown.append(line)
        else:
            raise AssertionError(f"{page}:{number}: output before any `$ ` command")
        continued = bool(command) and not shown and command[-1].endswith("\\")
    return steps


def _step(page: str, line: int, command: list[str], shown: list[str]) -> Step:
    text = "\n".join(command)
    found = _EXIT.search(text)
    while shown and not shown[-1].strip():
        shown.pop()
    return Step(page=page, line=line, command=text,
                exit_code=int(found.group(1)) if found else 0, shown=tuple(shown))


def _pattern(line: str) -> re.Pattern[str]:
    parts, last = [], 0
    for token in _TOKEN.finditer(line):
        parts.append(re.escape(line[last:token.start()]))
        parts.append(".*?" if token.group() == "…" else f"(?:{PLACEHOLDERS[token.group()]})")
        last = token.end()
    parts.append(re.escape(line[last:]))
    return re.compile("".join(parts))


def output_matches(shown: tuple[str, ...], output: list[str]) -> bool:
    """Whether ``output`` is what ``shown`` shows (see the module docstring)."""
    items = [None if line.strip() == "…" else _pattern(line.rstrip()) for line in shown]
    failed: set[tuple[int, int]] = set()

    def match(i: int, j: int) -> bool:
        """Whether output lines ``i:`` are what shown lines ``j:`` show."""
        if (i, j) in failed:
            return False
        pattern = items[j] if j < len(items) else None
        if j == len(items):
            ok = i == len(output)
        elif pattern is None:
            ok = any(match(k, j + 1) for k in range(i, len(output) + 1))
        else:
            ok = (i < len(output) and pattern.fullmatch(output[i]) is not None
                  and match(i + 1, j + 1))
        if not ok:
            failed.add((i, j))
        return ok

    return match(0, 0)


def test_the_block_format_rules():
    steps = page_steps("t.md", "\n".join([
        "text", "```console", "$ rivet a \\", "    -e x  # exit 6", "one <n> rows", "…",
        "$ rivet b", "```", "```sh", "$ not run", "```"]))
    assert [(s.command, s.exit_code, s.shown) for s in steps] == [
        ("rivet a \\\n    -e x  # exit 6", 6, ("one <n> rows", "…")),
        ("rivet b", 0, ())]
    assert output_matches(("a <run_id> …", "…", "z"),
                          ["a 20261127T121530Z-a1b2c3 anything", "x", "y", "z"])
    assert output_matches(("a", "…"), ["a"])
    assert not output_matches(("a", "z"), ["a", "x", "z"])
    assert not output_matches((), ["unexpected"])
    assert output_matches(("<size> in <duration>, sha256:<sha256>",),
                          ["1,234.5 KiB in 812 ms, sha256:0259609bd274712b…"])


def test_the_files_operating_md_quotes_are_the_example_files():
    """A block of docs/operating.md that starts with ``# excerpt: FILE`` is the end of FILE."""
    text = (ROOT / "docs" / "operating.md").read_text()
    quoted = re.findall(r"```\w*\n# excerpt: (\S+)\n(.*?)```", text, re.S)
    assert sorted(path for path, _ in quoted) == [
        "examples/operating/nightly.sh", "examples/operating/rivet.toml"]
    for path, block in quoted:
        assert (ROOT / path).read_text().endswith(block), f"docs/operating.md misquotes {path}"


@pytest.fixture
def docs_database() -> Iterator[None]:
    """The examples' schema (``rivet_docs``) is fixed, so that the pages show its name:
    checkouts running the suite on one server at once take turns (an advisory lock)."""
    import psycopg

    if shutil.which("psql") is None:
        pytest.skip("the examples use psql, which is not installed")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('rivet docs examples'))")
        try:
            yield
        finally:
            conn.execute("DROP SCHEMA IF EXISTS rivet_docs CASCADE")
            conn.execute("SELECT pg_advisory_unlock(hashtext('rivet docs examples'))")


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RIVET_")}
    env.update(DATABASE_URL=PG_URL, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", TZ="UTC",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def _run(step: Step, project: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    done = subprocess.run(["bash", "-c", step.command], cwd=project, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120, check=False)
    text = done.stdout.decode("utf-8", "replace")
    text = text.replace(str(project), "<project>").replace(PG_URL, DOCUMENTED_URL)
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return done.returncode, lines


@pytest.mark.parametrize("page", PAGES)
def test_every_example_of_the_page_runs_as_shown(page: str, docs_database: None,
                                                 tmp_path: Path) -> None:
    steps = page_steps(page, (ROOT / page).read_text())
    assert steps, f"{page} has no example"
    project = tmp_path / "operating"
    project.mkdir()
    for name in EXAMPLE_FILES:
        shutil.copy(EXAMPLE / name, project / name)
    env = _environment()
    subprocess.run(["psql", PG_URL, "-q", "-v", "ON_ERROR_STOP=1", "-f", "setup.sql"],
                   cwd=project, env=env, check=True, capture_output=True)
    problems = []
    for step in steps:
        code, output = _run(step, project, env)
        if code != step.exit_code or not output_matches(step.shown, output):
            problems.append(
                f"{step.page}:{step.line}: $ {step.command}\n"
                f"exit {code} (expected {step.exit_code}); output:\n"
                + "\n".join(output) + "\n--- shown:\n" + "\n".join(step.shown))
    assert not problems, "\n\n".join(problems)
