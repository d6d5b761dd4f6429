"""Where things are: repository paths, the reference virtualenv, the two databases.

The databases are taken from ``RIVETBENCH_PG_URL`` and ``RIVETBENCH_MYSQL_URL``; the defaults
are the local servers of the development machine. The database named in each URL is the
dedicated benchmark database (``rivet_bench``): it is created when missing and keeps its
tables between runs, and the server-side sampler only looks at sessions connected to it, so
other work on the same server does not show up as "longest statement".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
REF_VENV = BENCH_DIR / ".venv-ref"
PLOT_VENV = BENCH_DIR / ".venv-plot"
"""Optional: a virtualenv holding matplotlib, for the scaling plot when the harness's own
interpreter has none (so the product's ``.venv`` need not get numpy)."""
REQUIREMENTS_REF = BENCH_DIR / "requirements-ref.txt"
DEFAULT_WORK_DIR = BENCH_DIR / ".work"
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
RIVET_BIN = REPO_DIR / ".venv" / "bin" / "rivet"

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/rivet_bench"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/rivet_bench"


@dataclass(frozen=True)
class Database:
    """One benchmark database: ``kind`` is ``pg`` or ``mysql``."""

    kind: str
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """The URL form, with the password when there is one: hand it to child processes
        through the environment, never on a command line."""
        scheme = "postgresql" if self.kind == "pg" else "mysql"
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.database}"

    @property
    def label(self) -> str:
        return "PostgreSQL" if self.kind == "pg" else "MariaDB/MySQL"


def _parse(kind: str, url: str) -> Database:
    parts = urlsplit(url)
    default_port = 5432 if kind == "pg" else 3306
    return Database(
        kind=kind,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or default_port,
        user=unquote(parts.username or ("postgres" if kind == "pg" else "root")),
        password=unquote(parts.password or ""),
        database=(parts.path or "/rivet_bench").lstrip("/") or "rivet_bench",
    )


def database(kind: str) -> Database:
    """The benchmark database of ``kind`` (``pg`` or ``mysql``), from the environment."""
    if kind == "pg":
        return _parse("pg", os.environ.get("RIVETBENCH_PG_URL", DEFAULT_PG_URL))
    if kind == "mysql":
        return _parse("mysql", os.environ.get("RIVETBENCH_MYSQL_URL", DEFAULT_MYSQL_URL))
    raise ValueError(f"unknown database kind {kind!r} (pg or mysql)")
