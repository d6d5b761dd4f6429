"""PostgreSQL types zoo: every supported type with its edge values, exported by `rivet run`
to Parquet and to CSV, read back and compared value by value with PostgreSQL's own answer.

The table is written in an America/New_York session (so DST transitions are real) and read
by a source whose session zone is Asia/Kolkata (a non-whole-hour offset): neither zone may
change an instant.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from zoo_compare import canonical, compare, csv_records, csv_value, f32, timetz

KOLKATA = "options=-c%20timezone%3DAsia/Kolkata"
HUGE_JSON = json.dumps({"k": [{"i": i, "s": "x" * 50, "u": "é😀"} for i in range(12_000)]})

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺');
CREATE DOMAIN price AS numeric(12,2);
CREATE TABLE types_zoo (
    id int4 PRIMARY KEY, i2 int2, i4 int4, i8 int8, o oid,
    n numeric(38,10), n76 numeric(76,38), nu numeric, mo money, dm price,
    f4 float4, f8 float8, b bool,
    t text, vc varchar(10), c char(5), ci {citext}, nm name, x xml, e mood,
    d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, by bytea, ip inet, net cidr, mac macaddr, mac8 macaddr8,
    ia int4[], ta text[], na numeric(10,2)[], da date[], tsa timestamptz[], ua uuid[],
    ea mood[], pa price[], ja jsonb[]
)
"""

NINES = "9" * 28 + "." + "9" * 10
NINES76 = "9" * 38 + "." + "9" * 38
ROWS: list[dict[str, str]] = [
    {  # minimum values
        "i2": "-32768", "i4": "-2147483648", "i8": "-9223372036854775808", "o": "0",
        "n": f"-{NINES}", "n76": f"-{NINES76}", "nu": "-999999999999999999.99999999999999999999",
        "mo": "-92233720368547758.08", "dm": "-9999999999.99", "f4": "-3.4028235e38",
        "f8": "-1.7976931348623157e308", "b": "false", "t": "''", "vc": "''", "c": "''",
        "ci": "''", "nm": "''", "x": "'<a/>'", "e": "'sad'", "d": "'0001-01-01'",
        "tm": "'00:00:00'", "ttz": "'00:00:00-15:59'", "ts": "'0001-01-01 00:00:00'",
        "tstz": "'0001-01-01 00:00:00+00'", "iv": "'-1 year -2 mons +3 days -04:05:06.000007'",
        "u": "'00000000-0000-0000-0000-000000000000'", "j": "'null'", "jb": "'null'",
        "by": "'\\x'", "ip": "'0.0.0.0/0'", "net": "'0.0.0.0/0'", "mac": "'00:00:00:00:00:00'",
        "mac8": "'00:00:00:00:00:00:00:00'", "ia": "'{}'", "ta": "'{}'", "na": "'{}'",
        "da": "'{}'", "tsa": "'{}'", "ua": "'{}'", "ea": "'{}'", "pa": "'{}'", "ja": "'{}'",
    },
    {  # maximum values, 4-byte UTF-8, CSV specials, huge JSON
        "i2": "32767", "i4": "2147483647", "i8": "9223372036854775807", "o": "4294967295",
        "n": NINES, "n76": NINES76, "nu": "3.14159265358979323846", "mo": "92233720368547758.07",
        "dm": "9999999999.99", "f4": "3.4028235e38", "f8": "1.7976931348623157e308",
        "b": "true", "t": "E'😀𝄞 \"q\", ,\\nline2\\r\\n'", "vc": "'abc'", "c": "'ab'",
        "ci": "'HeLLo'", "nm": "'pg_name'", "x": "'<a b=\"1\">x &amp; y</a>'",
        "e": "'happy ☺'", "d": "'9999-12-31'", "tm": "'23:59:59.999999'",
        "ttz": "'24:00:00+15:59'", "ts": "'9999-12-31 23:59:59.999999'",
        "tstz": "'9999-12-31 23:59:59.999999+00'",
        "iv": "'178000000 years 11 mons 2147483647 days 2562047788:00:54.775807'",
        "u": "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "j": "%(huge)s",
        "jb": "'{\"b\": 1, \"a\": [1, 2.50, \"x\", null]}'", "by": "'\\x00ff10'",
        "ip": "'::ffff:1.2.3.4'", "net": "'2001:db8::/32'", "mac": "'08:00:2b:01:02:03'",
        "mac8": "'08:00:2b:01:02:03:04:05'", "ia": "'{1,NULL,-3}'",
        "ta": "'{\"a,b\",\"\",\"😀\",NULL,\"\\\\\"}'", "na": "'{1.25,NULL,-0.01}'",
        "da": "'{2024-02-29,NULL,0001-01-01}'",
        "tsa": "'{\"2024-01-01 00:00:00.000001+00\",NULL}'",
        "ua": "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'", "ea": "'{sad,NULL,\"happy ☺\"}'",
        "pa": "'{1.50,NULL}'", "ja": "ARRAY['{\"a\": 1}'::jsonb, 'null', NULL]",
    },
    {"f4": "'NaN'", "f8": "'NaN'", "ip": "'192.168.0.1/24'", "net": "'10.0.0.0/8'",
     "iv": "'0'", "tstz": "'2024-03-10 01:59:59.999999'", "ts": "'2016-12-31 23:59:60'",
     "ttz": "'12:00:00.5+05:30'", "j": "'{\"b\":1,  \"a\":[1, 2]}'", "ia": "'{NULL}'"},
    {"f4": "'Infinity'", "f8": "'-Infinity'", "ip": "'2001:db8:0:1::1'",
     "iv": "'-0.5 seconds'", "tstz": "'2024-03-10 03:00:00'", "ts": "'2024-03-10 02:30:00'",
     "ttz": "'00:00:00.000001+05:53:28'", "tm": "'12:00:00.5'"},
    {"f4": "'-0'", "f8": "'-0'", "tstz": "'2024-11-03 01:30:00-04'", "ip": "'::1'",
     "ts": "'2024-11-03 01:30:00.000001'", "iv": "'1 mon -1 day'"},
    {"f4": "'1.4e-45'", "f8": "'5e-324'", "tstz": "'2024-11-03 01:30:00-05'",
     "iv": "'100 hours 0.000001 seconds'"},
    {"f4": "'0.1'", "f8": "'1.0000000000000002'", "tstz": "'2016-12-31 23:59:60+00'",
     "nu": "'0.00000000000000000001'"},
    {},  # every column NULL
]

# Column → canonical kind, and the expression giving PostgreSQL's own answer.
KINDS = {
    "i2": "int", "i4": "int", "i8": "int", "o": "int", "n": "dec", "n76": "dec",
    "nu": "dec", "mo": "dec", "dm": "dec", "f4": "f4", "f8": "f8", "b": "bool",
    "t": "text", "vc": "text", "c": "text", "ci": "text", "nm": "text", "x": "text",
    "e": "text", "d": "date", "tm": "time", "ttz": "timetz", "ts": "ts", "tstz": "tstz",
    "iv": "text", "u": "text", "j": "text", "jb": "text", "by": "bytes", "ip": "text",
    "net": "text", "mac": "text", "mac8": "text", "ia": "list:int", "ta": "list:text",
    "na": "list:dec", "da": "list:date", "tsa": "list:tstz", "ua": "list:text",
    "ea": "list:text", "pa": "list:dec", "ja": "list:text",
}
TRUTH_SQL = {
    "mo": "mo::numeric", "tstz": "(extract(epoch FROM tstz) * 1000000)::int8",
    "ttz": "ttz::text", "iv": "iv::text", "u": "u::text", "j": "j::text", "jb": "jb::text",
    # format('%s') uses each type's output function, as a client sees it (text(inet)
    # would always append the mask).
    **{c: f"CASE WHEN {c} IS NOT NULL THEN format('%s', {c}) END"
       for c in ("ip", "net", "mac", "mac8")},
    "x": "x::text", "e": "e::text", "ci": "ci::text", "nm": "nm::text", "f4": "f4::text",
    "tsa": "CASE WHEN tsa IS NOT NULL THEN COALESCE((SELECT array_agg((extract(epoch FROM v)"
           " * 1000000)::int8 ORDER BY n) FROM unnest(tsa) WITH ORDINALITY AS a(v, n)), '{}') END",
    "ua": "ua::text[]", "ea": "ea::text[]", "ja": "ja::text[]", "pa": "pa::numeric[]",
}


def citext_type(conn) -> str:
    """The qualified citext type. An extension exists once per database, so it goes to
    ``public`` (never to a test schema another session drops) unless it is already there."""
    import psycopg

    # A concurrent session may create it first.
    with contextlib.suppress(psycopg.errors.UniqueViolation):
        conn.execute("CREATE EXTENSION IF NOT EXISTS citext SCHEMA public")
    (schema,) = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                             "WHERE extname = 'citext'").fetchone()
    return f"{schema}.citext"


@pytest.fixture(scope="module")
def zoo(pg_url, pg_schema):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute(SCHEMA.format(citext=citext_type(conn)))
        conn.execute("SET TimeZone = 'America/New_York'")
        columns = list(KINDS)
        for index, row in enumerate(ROWS, start=1):
            values = [row.get(c, "NULL") for c in columns]
            sql = (f"INSERT INTO types_zoo (id, {', '.join(columns)}) "
                   f"VALUES ({index}, {', '.join(values)})")
            if "%(huge)s" in sql:
                conn.execute(sql.replace("%", "%%").replace("%%(huge)s", "%(huge)s"),
                             {"huge": HUGE_JSON})
            else:
                conn.execute(sql)
    return f'"{pg_schema}".types_zoo'


def truth(pg, table: str) -> list[dict[str, object]]:
    """PostgreSQL's own answer, in canonical form."""
    pg.execute("SET TimeZone = 'UTC'; SET IntervalStyle = 'iso_8601'")
    exprs = ", ".join(f"{TRUTH_SQL.get(c, c)} AS {c}" for c in KINDS)
    cur = pg.execute(f"SELECT id, {exprs} FROM {table} ORDER BY id")
    names = [d.name for d in cur.description]
    rows = []
    for record in cur.fetchall():
        row = dict(zip(names, record, strict=True))
        for column, kind in KINDS.items():
            value = row[column]
            if value is None:
                continue
            if kind == "f4":
                row[column] = f32(float(value))
            elif kind == "timetz":
                row[column] = timetz(value)
            elif column == "ia" or kind in ("list:dec", "list:date", "list:text"):
                row[column] = list(value)
            elif kind == "dec":
                row[column] = Decimal(value)
        rows.append(row)
    return rows


CONFIG = """
[source]
type = "postgres"
url = "{url}"

[[exports]]
name = "zoo_parquet"
query = "SELECT * FROM {table} ORDER BY id"
format = "parquet"
[exports.destination]
type = "local"
path = "./out/parquet"

[[exports]]
name = "zoo_csv"
query = "SELECT * FROM {table} ORDER BY id"
format = "csv"
[exports.destination]
type = "local"
path = "./out/csv"
"""


@pytest.fixture(scope="module")
def exported(zoo, pg_url, tmp_path_factory):
    """Both exports run once by `rivet run`; returns (Parquet table, CSV text)."""
    from rivet_core.testing import RivetProject

    project = RivetProject(tmp_path_factory.mktemp("zoo_pg"))
    url = pg_url + ("&" if "?" in pg_url else "?") + KOLKATA
    project.write_config(CONFIG.format(url=url, table=zoo.replace('"', '\\"')))
    project.run("run").assert_success()
    (parquet_file,) = (project.path / "out" / "parquet").glob("*.parquet")
    (csv_file,) = (project.path / "out" / "csv").glob("*.csv")
    return pq.read_table(parquet_file), csv_file.read_bytes().decode("utf-8")


def test_parquet_holds_exactly_what_postgresql_holds(pg, zoo, exported):
    table, _ = exported
    actual = [{c: canonical(KINDS.get(c, "int"), v) for c, v in row.items()}
              for row in table.to_pylist()]
    compare(truth(pg, zoo), actual, "parquet")


def test_csv_holds_exactly_what_postgresql_holds(pg, zoo, exported):
    _, text = exported
    header, *records = csv_records(text)
    names = [name for name, _ in header]
    assert names == ["id", *KINDS]
    actual = [{name: csv_value(KINDS.get(name, "int"), value, quoted)
               for name, (value, quoted) in zip(names, record, strict=True)}
              for record in records]
    compare(truth(pg, zoo), actual, "csv")


def test_parquet_schema_has_the_documented_types(exported):
    table, _ = exported
    types = {f.name: f.type for f in table.schema}
    assert types["nu"] == pa.decimal128(38, 20) and types["n76"] == pa.decimal256(76, 38)
    assert types["mo"] == pa.decimal128(19, 2) and types["dm"] == pa.decimal128(12, 2)
    assert types["tstz"] == pa.timestamp("us", tz="UTC") and types["o"] == pa.int64()
    assert types["iv"] == pa.string() and types["ttz"] == pa.string()
    assert pa.types.is_list(types["pa"]) and types["pa"].value_type == pa.decimal128(12, 2)
    assert types["tsa"].value_type == pa.timestamp("us", tz="UTC")
    logical = {f.name: (f.metadata or {}).get(b"rivet.logical_type") for f in table.schema}
    assert logical["iv"] == b"interval" and logical["e"] == b"enum"
    assert logical["ttz"] == b"timetz" and logical["ja"] == b"json[]"


def test_empty_string_and_null_stay_apart_in_both_formats(exported):
    table, text = exported
    assert table.column("t").to_pylist()[0] == "" and table.column("t").to_pylist()[-1] is None
    records = csv_records(text)
    t_index = [name for name, _ in records[0]].index("t")
    assert records[1][t_index] == ("", True) and records[-1][t_index] == ("", False)


def test_the_dst_and_leap_second_instants_are_exact(exported):
    table, _ = exported
    instants = table.column("tstz").to_pylist()
    utc = dt.UTC
    assert instants[2] == dt.datetime(2024, 3, 10, 6, 59, 59, 999999, tzinfo=utc)
    assert instants[3] == dt.datetime(2024, 3, 10, 7, 0, tzinfo=utc)
    assert instants[4] == dt.datetime(2024, 11, 3, 5, 30, tzinfo=utc)
    assert instants[5] == dt.datetime(2024, 11, 3, 6, 30, tzinfo=utc)
    assert instants[6] == dt.datetime(2017, 1, 1, tzinfo=utc)


def test_type_report_of_the_zoo_is_strict_clean_and_is_the_schema_written(zoo, pg_url,
                                                                         exported,
                                                                         tmp_path_factory):
    from rivet_core.testing import RivetProject

    table, _ = exported
    project = RivetProject(tmp_path_factory.mktemp("zoo_pg_report"))
    project.write_config(CONFIG.format(url=pg_url, table=zoo.replace('"', '\\"')))
    outcome = project.run("check", "--type-report", "--strict", "--json", "-e", "zoo_parquet")
    outcome.assert_success()
    (report,) = outcome.json()["type_report"]["exports"]
    assert {c["fidelity"] for c in report["columns"]} <= {"exact", "widened"}
    written = {f.name: str(f.type).replace("element:", "item:") for f in table.schema}
    assert {c["name"]: c["arrow_type"] for c in report["columns"]} == written


PATHS_CONFIG = """
[source]
type = "postgres"
url = "{url}"
read_path = "{path}"

[[exports]]
name = "zoo_parquet"
query = "SELECT * FROM {table} ORDER BY id"
format = "parquet"
[exports.destination]
type = "local"
path = "./out/parquet"

[[exports]]
name = "zoo_csv"
query = "SELECT * FROM {table} ORDER BY id"
format = "csv"
[exports.destination]
type = "local"
path = "./out/csv"
"""


@pytest.mark.parametrize("path", ["copy", "cursor"])
def test_each_read_path_forced_writes_the_same_files(zoo, pg_url, exported, tmp_path_factory,
                                                     path):
    """The default run (binary COPY) and a run forced onto each path give equal Parquet
    tables and byte-identical CSV; the summary names the path."""
    from rivet_core.testing import RivetProject

    project = RivetProject(tmp_path_factory.mktemp(f"zoo_pg_{path}"))
    url = pg_url + ("&" if "?" in pg_url else "?") + KOLKATA
    project.write_config(PATHS_CONFIG.format(url=url, path=path,
                                             table=zoo.replace('"', '\\"')))
    outcome = project.run("run", "--json")
    outcome.assert_success()
    read_paths = {e["export"]: e["read_paths"] for e in outcome.json()["exports"]}
    prefix = "binary COPY" if path == "copy" else "server-side cursor (psycopg)"
    assert all(p[0].startswith(prefix) for p in read_paths.values()), read_paths
    (parquet_file,) = (project.path / "out" / "parquet").glob("*.parquet")
    (csv_file,) = (project.path / "out" / "csv").glob("*.csv")
    table, text = exported
    assert_same_table(pq.read_table(parquet_file), table)
    assert csv_file.read_bytes().decode("utf-8") == text


def assert_same_table(actual: pa.Table, expected: pa.Table) -> None:
    """Equal schemas and values; floats compared bit for bit (NaN equals NaN, -0 is not 0)."""
    assert actual.schema.equals(expected.schema, check_metadata=True)
    for name in expected.column_names:
        got, want = actual.column(name).combine_chunks(), expected.column(name).combine_chunks()
        if pa.types.is_floating(want.type):
            bits = pa.int32() if pa.types.is_float32(want.type) else pa.int64()
            got, want = got.view(bits), want.view(bits)
        assert got.equals(want), name


def test_the_default_run_of_the_zoo_takes_the_copy_path(zoo, pg_url, tmp_path_factory):
    from rivet_core.testing import RivetProject

    project = RivetProject(tmp_path_factory.mktemp("zoo_pg_default"))
    project.write_config(CONFIG.format(url=pg_url, table=zoo.replace('"', '\\"')))
    outcome = project.run("run", "--json", "-e", "zoo_csv")
    outcome.assert_success()
    (export,) = outcome.json()["exports"]
    assert export["read_paths"] == ["binary COPY"]
