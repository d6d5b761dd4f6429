"""Every tool the harness measures, and the command line that runs it once.

Three kinds of tool:

- ``limit``: the physical limit, the server streaming the rows to a client that throws
  them away (``psql \\copy ... TO '/dev/null'`` in binary, ``mariadb --quick > /dev/null``).
  No file, so one run serves both formats' tables;
- ``reference``: the tools a user would pick instead, run by :mod:`rivetbench.refrun`
  inside the reference virtualenv;
- ``rivet``: ``rivet run -c <generated config> --json`` from the repository's ``.venv``,
  one tool per Rivet variant (:mod:`rivetbench.rivetcfg`).

Building an :class:`Invocation` does no I/O except writing a Rivet run's config file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rivetbench import rivetcfg
from rivetbench.fixtures import Table, select_all
from rivetbench.settings import REF_VENV, RIVET_BIN, Database

LIMIT_FORMAT = "-"
"""The format of a physical-limit run: it writes no file."""

FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class Tool:
    """A tool as the report lists it."""

    name: str
    kind: str  # "limit", "reference" or "rivet"
    dbs: tuple[str, ...]
    formats: tuple[str, ...]
    description: str
    packages: tuple[str, ...] = ()
    """Requirement names (from ``bench/requirements-ref.txt``) the tool needs."""
    slow: bool = False
    """Minutes per run on the full tables; ``--skip-slow`` leaves it out."""

    def supports(self, db: str, fmt: str) -> bool:
        return db in self.dbs and (fmt in self.formats)


_BOTH = ("pg", "mysql")

REFERENCE_TOOLS: tuple[Tool, ...] = (
    Tool("pg-copy", "limit", ("pg",), (LIMIT_FORMAT,),
         "psql \\copy (SELECT * ...) TO '/dev/null' WITH (FORMAT binary): the server's "
         "speed, nothing decoded or written"),
    Tool("mysql-quick", "limit", ("mysql",), (LIMIT_FORMAT,),
         "mariadb --quick --batch -e 'SELECT * ...' > /dev/null: the server's speed, "
         "rows printed as text and thrown away"),
    Tool("duckdb", "reference", _BOTH, FORMATS,
         "DuckDB ATTACH (postgres / mysql scanner, READ_ONLY) and COPY (SELECT * ...) TO "
         "file (parquet zstd / csv)",
         packages=("duckdb", "duckdb-extension-postgres-scanner",
                   "duckdb-extension-mysql-scanner")),
    Tool("connectorx", "reference", _BOTH, FORMATS,
         "cx.read_sql(return_type='arrow', partition_on='id', partition_num=2), then "
         "pyarrow writes the file",
         packages=("connectorx", "pyarrow")),
    Tool("connectorx-1", "reference", ("pg",), FORMATS,
         "cx.read_sql(return_type='arrow') without partitioning, then pyarrow writes the file",
         packages=("connectorx", "pyarrow")),
    Tool("adbc", "reference", ("pg",), FORMATS,
         "adbc_driver_postgresql cursor.fetch_record_batch() streamed into a pyarrow "
         "ParquetWriter (zstd) / CSVWriter",
         packages=("adbc-driver-manager", "adbc-driver-postgresql", "pyarrow")),
    Tool("dlt", "reference", _BOTH, FORMATS,
         "dlt sql_database(backend='pyarrow') into the filesystem destination, "
         "loader_file_format parquet / csv",
         packages=("dlt", "SQLAlchemy", "psycopg2-binary", "PyMySQL", "pyarrow"), slow=True),
    Tool("naive", "reference", _BOTH, FORMATS,
         "the obvious approach: psycopg named cursor / pymysql SSCursor, fetchmany(10000), "
         "rows -> pa.array columns -> ParquetWriter / CSVWriter",
         packages=("psycopg", "PyMySQL", "pyarrow"), slow=True),
    Tool("sling", "reference", _BOTH, FORMATS,
         "sling run --src-stream 'SELECT * ...' --tgt-object file://... (sling 1.4.11 binary)",
         packages=("sling-linux-amd64",)),
)


def rivet_tools(variants: list[str]) -> list[Tool]:
    """One tool per selected Rivet variant."""
    tools = []
    for name in variants:
        variant = rivetcfg.VARIANTS[name]
        tools.append(Tool(name, "rivet", _BOTH, FORMATS,
                          f"rivet run --json; {variant.description}"))
    return tools


@dataclass(frozen=True)
class Invocation:
    """How to start one run: the child's argv and environment, where its stdout goes
    (``None``: /dev/null), and where its data files end up."""

    argv: list[str]
    env: dict[str, str]
    stdout_path: Path | None
    stderr_path: Path
    data_dir: Path | None


def child_env(**extra: str) -> dict[str, str]:
    """A child's environment: the harness's without any ``RIVET_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    env.update(extra)
    return env


def mysql_client() -> str:
    return shutil.which("mariadb") or shutil.which("mysql") or "mariadb"


def invocation(tool: Tool, db: Database, table: Table, fmt: str, run_dir: Path) -> Invocation:
    """The command of one run of ``tool``; ``run_dir`` is an empty directory for it."""
    out = run_dir / "out"
    stderr = run_dir / "stderr.log"
    stdout = run_dir / "stdout.log"
    query = select_all(db.kind, db.database, table)
    if tool.name == "pg-copy":
        argv = ["psql", "-X", "-h", db.host, "-p", str(db.port), "-U", db.user, "-d",
                db.database, "-c", f"\\copy ({query}) TO '/dev/null' WITH (FORMAT binary)"]
        env = child_env(PGPASSWORD=db.password) if db.password else child_env()
        return Invocation(argv, env, stdout, stderr, None)
    if tool.name == "mysql-quick":
        argv = [mysql_client(), "--quick", "--batch", "--skip-column-names", "-h", db.host,
                "-P", str(db.port), "-u", db.user, "-D", db.database, "-e", query]
        env = child_env(MYSQL_PWD=db.password) if db.password else child_env()
        return Invocation(argv, env, None, stderr, None)
    out.mkdir(parents=True)
    if tool.kind == "rivet":
        config = run_dir / "rivet.toml"
        config.write_text(rivetcfg.render_config(rivetcfg.VARIANTS[tool.name], db, table, fmt))
        argv = [str(RIVET_BIN), "run", "-c", str(config), "--json", "--no-progress"]
        env = child_env(**{rivetcfg.URL_ENV: db.url})
        return Invocation(argv, env, stdout, stderr, out)
    refrun = Path(__file__).resolve().parent / "refrun.py"
    ref_name = "connectorx" if tool.name.startswith("connectorx") else tool.name
    argv = [str(REF_VENV / "bin" / "python"), str(refrun), ref_name, "--db", db.kind,
            "--host", db.host, "--port", str(db.port), "--user", db.user,
            "--database", db.database, "--table", table.name, "--format", fmt,
            "--out", str(out), "--partitions", "2" if tool.name == "connectorx" else "1"]
    env = child_env(RIVETBENCH_DB_PASSWORD=db.password)
    data_dir = out / "bench" / table.name if tool.name == "dlt" else out
    return Invocation(argv, env, stdout, stderr, data_dir)


def warmup_invocation(db: Database, table: Table, run_dir: Path) -> Invocation:
    """The untimed read of a whole table before its first measured run."""
    limit = "pg-copy" if db.kind == "pg" else "mysql-quick"
    tool = next(t for t in REFERENCE_TOOLS if t.name == limit)
    return invocation(tool, db, table, LIMIT_FORMAT, run_dir)



def many_invocation(tool: Tool, db: Database, tables: list[Table], fmt: str,
                    run_dir: Path) -> Invocation:
    """The many-small-tables shape: ONE process of ``tool`` over every table of ``tables``.

    - ``pg-copy``: one psql running a script of one ``\\copy ... TO '/dev/null'`` per table;
    - ``mysql-quick``: one client running ``SELECT * FROM t1; SELECT * FROM t2; ...``;
    - ``duckdb``: ``refrun.py duckdb-many``: the source attached once, one ``COPY`` per
      table to ``out/<table>.<format>``;
    - a Rivet variant: one ``rivet run`` of a config with one ``table`` export per table,
      each to ``out/<table>/``.
    """
    out = run_dir / "out"
    stderr = run_dir / "stderr.log"
    stdout = run_dir / "stdout.log"
    queries = [select_all(db.kind, db.database, table) for table in tables]
    if tool.name == "pg-copy":
        script = run_dir / "copy.sql"
        script.write_text("".join(f"\\copy ({query}) TO '/dev/null' WITH (FORMAT binary)\n"
                                  for query in queries))
        argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", db.host, "-p", str(db.port),
                "-U", db.user, "-d", db.database, "-f", str(script)]
        env = child_env(PGPASSWORD=db.password) if db.password else child_env()
        return Invocation(argv, env, stdout, stderr, None)
    if tool.name == "mysql-quick":
        argv = [mysql_client(), "--quick", "--batch", "--skip-column-names", "-h", db.host,
                "-P", str(db.port), "-u", db.user, "-D", db.database,
                "-e", "; ".join(queries)]
        env = child_env(MYSQL_PWD=db.password) if db.password else child_env()
        return Invocation(argv, env, None, stderr, None)
    out.mkdir(parents=True)
    if tool.kind == "rivet":
        config = run_dir / "rivet.toml"
        config.write_text(rivetcfg.render_many_config(rivetcfg.VARIANTS[tool.name], db,
                                                      tables, fmt))
        argv = [str(RIVET_BIN), "run", "-c", str(config), "--json", "--no-progress"]
        return Invocation(argv, child_env(**{rivetcfg.URL_ENV: db.url}), stdout, stderr, out)
    if tool.name != "duckdb":
        raise ValueError(f"{tool.name} has no many-tables shape (rivet, duckdb and the limits)")
    refrun = Path(__file__).resolve().parent / "refrun.py"
    argv = [str(REF_VENV / "bin" / "python"), str(refrun), "duckdb-many", "--db", db.kind,
            "--host", db.host, "--port", str(db.port), "--user", db.user,
            "--database", db.database, "--tables", ",".join(t.name for t in tables),
            "--format", fmt, "--out", str(out)]
    env = child_env(RIVETBENCH_DB_PASSWORD=db.password)
    return Invocation(argv, env, stdout, stderr, out)
