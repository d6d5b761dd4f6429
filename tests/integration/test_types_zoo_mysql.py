"""MariaDB types zoo: every supported type with its edge values, exported by `rivet run` to
Parquet and to CSV, read back and compared value by value with MariaDB's own answer.

The table is written from a session at +05:30 with a permissive sql_mode (zero and invalid
dates are stored), and exported with ``zero_dates = "null"``. FLOAT is exported through
``CAST(fl AS DOUBLE)``, the documented exact route (plain FLOAT is refused, see
test_mysql_source).

Every export runs twice, once on each read path, forced (``read_path = "connectorx"`` and
``"pymysql"``): both must hold exactly MariaDB's answer, and the two Parquet files must be
equal. The query has no ORDER BY (a cast wrapper would lose it, sending the read to the
pymysql path); rows are compared in id order.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from zoo_compare import compare, csv_records, csv_value

HUGE_JSON = json.dumps({"k": [{"i": i, "s": "x" * 50, "u": "é😀"} for i in range(12_000)]})
BIG_BLOB = bytes(range(256)) * 400
NINES = "9" * 35 + "." + "9" * 30

SCHEMA = """
CREATE TABLE types_zoo (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, b1 BOOL, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT,
    biu BIGINT UNSIGNED, dec65 DECIMAL(65,30), dec2 DECIMAL(10,2), decu DECIMAL(20,0) UNSIGNED,
    dbl DOUBLE, fl FLOAT, bt BIT(1), b8 BIT(8), b64 BIT(64), yr YEAR,
    ch CHAR(10), vc VARCHAR(50), vcl VARCHAR(50) CHARACTER SET latin1, tx TEXT, lt LONGTEXT,
    js JSON, bn BINARY(4), vb VARBINARY(10), bl BLOB, lb LONGBLOB,
    en ENUM('a', 'b', 'ü😀'), st SET('x', 'y', 'z'),
    d DATE, dt DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL, tm TIME(6), tm0 TIME,
    g GEOMETRY
) CHARACTER SET utf8mb4
"""

ROWS: list[dict[str, str]] = [
    {  # minimum values, empty strings
        "ti": "-128", "tiu": "0", "b1": "0", "si": "-32768", "siu": "0", "mi": "-8388608",
        "miu": "0", "i": "-2147483648", "iu": "0", "bi": "-9223372036854775808", "biu": "0",
        "dec65": f"-{NINES}", "dec2": "-99999999.99", "decu": "0",
        "dbl": "-1.7976931348623157e308", "fl": "-3.4028234e38", "bt": "b'0'",
        "b8": "b'00000000'", "b64": "0", "yr": "1901", "ch": "''", "vc": "''", "vcl": "''",
        "tx": "''", "lt": "''", "js": "'null'", "bn": "''", "vb": "''", "bl": "''", "lb": "''",
        "en": "'a'", "st": "''", "d": "'1000-01-01'", "dt": "'1000-01-01 00:00:00'",
        "dt0": "'1000-01-01 00:00:00'", "ts": "FROM_UNIXTIME(1)", "tm": "'-838:59:59'",
        "tm0": "'-838:59:59'", "g": "ST_GeomFromText('POINT(0 0)')",
    },
    {  # maximum values, 4-byte UTF-8, CSV specials, huge JSON and BLOB
        "ti": "127", "tiu": "255", "b1": "1", "si": "32767", "siu": "65535", "mi": "8388607",
        "miu": "16777215", "i": "2147483647", "iu": "4294967295",
        "bi": "9223372036854775807", "biu": "18446744073709551615", "dec65": NINES,
        "dec2": "99999999.99", "decu": "99999999999999999999",
        "dbl": "1.7976931348623157e308", "fl": "16777216", "bt": "b'1'", "b8": "b'11111111'",
        "b64": "b'" + "1" * 64 + "'", "yr": "2155", "ch": "'😀𝄞 \"q\",'",
        "vc": "'😀 ,\\n\"x\"\\r\\n'", "vcl": "'café'", "tx": "'text ✓'", "lt": "%(huge)s",
        "js": "%(huge)s", "bn": "x'00FF'", "vb": "x'00FF10'", "bl": "x'DEADBEEF'",
        "lb": "%(blob)s", "en": "'ü😀'", "st": "'x,y,z'", "d": "'9999-12-31'",
        "dt": "'9999-12-31 23:59:59.999999'", "dt0": "'9999-12-31 23:59:59'",
        "ts": "FROM_UNIXTIME(2147483647.999999)", "tm": "'838:59:59'", "tm0": "'838:59:59'",
        "g": "ST_GeomFromText('POINT(1 2)', 4326)",
    },
    {"dbl": "0.30000000000000004", "fl": "1.2345678", "js": "'{\"b\":1,  \"a\":[1, 2]}'",
     "ts": "'2024-01-01 05:30:00.000001'", "dt": "'2024-03-10 02:30:00'", "d": "'2024-02-29'",
     "tm": "'00:00:00.000001'", "st": "'y'", "g": "ST_GeomFromText('LINESTRING(0 0, 1 1)', 3857)",
     "b8": "b'101'"},
    {"dbl": "5e-324", "fl": "1.1754944e-38", "ts": "FROM_UNIXTIME(1710053999.999999)",
     "dt": "'2016-12-31 23:59:59.999999'", "tm": "'23:59:59.999999'",
     "dt0": "'2024-11-03 01:30:00'", "tm0": "'-00:00:01'"},
    {"dbl": "-0e0", "ts": "FROM_UNIXTIME(1710054000)", "dt": "'2017-01-01 00:00:00'"},
    {"d": "'0000-00-00'", "dt": "'0000-00-00 00:00:00'", "dt0": "'0000-00-00 00:00:00'",
     "ts": "'0000-00-00 00:00:00'"},
    {"d": "'2024-02-30'", "dt": "'2024-00-15 10:00:00'"},
    {},  # every column NULL
]

KINDS = {
    "ti": "int", "tiu": "int", "b1": "bool", "si": "int", "siu": "int", "mi": "int",
    "miu": "int", "i": "int", "iu": "int", "bi": "int", "biu": "int", "dec65": "dec",
    "dec2": "dec", "decu": "dec", "dbl": "f8", "fl": "f8", "bt": "bool", "b8": "int",
    "b64": "int", "yr": "int", "ch": "text", "vc": "text", "vcl": "text", "tx": "text",
    "lt": "text", "js": "text", "bn": "bytes", "vb": "bytes", "bl": "bytes", "lb": "bytes",
    "en": "text", "st": "text", "d": "date", "dt": "ts", "dt0": "ts", "ts": "tstz",
    "tm": "text", "tm0": "text", "g": "geom", "nul": "text",
}
EXPORT_SQL = ("SELECT id, " + ", ".join(
    "CAST(fl AS DOUBLE) AS fl" if c == "fl" else "NULL AS nul" if c == "nul" else c
    for c in KINDS) + " FROM types_zoo")
READ_PATHS = ["connectorx", "pymysql"]

TRUTH_SQL = {
    "b1": "b1 + 0", "bt": "bt + 0", "b8": "b8 + 0", "b64": "b64 + 0", "yr": "yr + 0",
    "dec65": "CAST(dec65 AS CHAR)", "dec2": "CAST(dec2 AS CHAR)", "decu": "CAST(decu AS CHAR)",
    "fl": "CAST(fl AS DOUBLE)", "en": "CAST(en AS CHAR)", "st": "CAST(st AS CHAR)",
    "tm": "CAST(tm AS CHAR)", "tm0": "CAST(tm0 AS CHAR)", "nul": "NULL",
    # Dates as MariaDB spells them; the ones Python's calendar rejects (zero and invalid
    # dates) become NULL in the truth, as zero_dates = "null" promises.
    "d": "CAST(d AS CHAR)", "dt": "CAST(dt AS CHAR)", "dt0": "CAST(dt0 AS CHAR)",
    "ts": "IF(CAST(ts AS CHAR) LIKE '0000-00-00%', NULL, "
          "CAST(UNIX_TIMESTAMP(ts) * 1000000 AS SIGNED))",
    "g": "CONCAT(ST_SRID(g), ':', HEX(ST_AsBinary(g)))",
}


def ewkb_parts(value: bytes) -> str:
    """``srid:HEXWKB`` of a WKB/EWKB value, as the truth query spells a geometry."""
    order = "<" if value[0] == 1 else ">"
    (geometry_type,) = struct.unpack(f"{order}I", value[1:5])
    if geometry_type & 0x20000000:
        (srid,) = struct.unpack(f"{order}I", value[5:9])
        plain = value[:1] + struct.pack(f"{order}I", geometry_type & ~0x20000000) + value[9:]
        return f"{srid}:{plain.hex().upper()}"
    return f"0:{value.hex().upper()}"


def connect(mysql_url: str, database: str):
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(mysql_url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=parts.username or "", password=parts.password or "",
                           database=database, charset="utf8mb4", autocommit=True)


def calendar(parse):
    """``parse``, or None for a text Python's calendar rejects (a zero or invalid date)."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError:
            return None
    return convert


def canonical(kind: str, value):
    if value is None:
        return None
    if kind == "tstz":
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    if kind == "geom":
        return ewkb_parts(value)
    return value


@pytest.fixture(scope="module")
def zoo(mysql_url, mysql_db):
    with connect(mysql_url, mysql_db) as conn, conn.cursor() as cursor:
        cursor.execute("SET time_zone = '+05:30', "
                       "sql_mode = 'NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES'")
        cursor.execute("DROP TABLE IF EXISTS types_zoo")
        cursor.execute(SCHEMA)
        columns = [c for c in KINDS if c != "nul"]
        for index, row in enumerate(ROWS, start=1):
            values = ", ".join(row.get(c, "NULL") for c in columns)
            sql = f"INSERT INTO types_zoo (id, {', '.join(columns)}) VALUES ({index}, {values})"
            if "%(" in sql:
                cursor.execute(sql, {"huge": HUGE_JSON, "blob": BIG_BLOB})
            else:
                cursor.execute(sql)
    return "types_zoo"


def truth(mysql_url, mysql_db) -> list[dict[str, object]]:
    """MariaDB's own answer (pymysql's default decoders on expressions that spell each value
    unambiguously), in canonical form."""
    exprs = ", ".join(f"{TRUTH_SQL.get(c, c)} AS {c}" for c in KINDS)
    with connect(mysql_url, mysql_db) as conn, conn.cursor() as cursor:
        cursor.execute("SET time_zone = '+05:30'")
        cursor.execute(f"SELECT id, {exprs} FROM types_zoo ORDER BY id")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, record, strict=True)) for record in cursor.fetchall()]
    converters = {
        "dec": Decimal, "bool": bool, "date": calendar(dt.date.fromisoformat),
        "ts": calendar(dt.datetime.fromisoformat), "tstz": int, "f8": float, "int": int,
        "bytes": bytes,
    }
    for row in rows:
        for column, kind in KINDS.items():
            value = row[column]
            if value is not None and kind in converters:
                row[column] = converters[kind](value)
            if isinstance(row[column], bytes) and kind in ("text", "geom"):
                row[column] = row[column].decode()
    return rows


CONFIG = """
[source]
type = "mysql"
url = "{url}"
zero_dates = "null"
read_path = "{read_path}"

[[exports]]
name = "zoo_parquet"
query = "{sql}"
format = "parquet"
[exports.destination]
type = "local"
path = "./out/parquet"

[[exports]]
name = "zoo_csv"
query = "{sql}"
format = "csv"
[exports.destination]
type = "local"
path = "./out/csv"
"""


def run_zoo(mysql_db_url, tmp_path_factory, read_path):
    """Both exports run once by `rivet run` on one read path; returns (Parquet table in id
    order, CSV text, the read paths the run reported)."""
    from rivet_core.testing import RivetProject

    project = RivetProject(tmp_path_factory.mktemp(f"zoo_mysql_{read_path}"))
    project.write_config(CONFIG.format(url=mysql_db_url, sql=EXPORT_SQL, read_path=read_path))
    outcome = project.run("run", "--json")
    outcome.assert_success()
    paths = {p for export in outcome.json()["exports"] for p in export["read_paths"]}
    (parquet_file,) = (project.path / "out" / "parquet").glob("*.parquet")
    (csv_file,) = (project.path / "out" / "csv").glob("*.csv")
    table = pq.read_table(parquet_file).sort_by("id")
    return table, csv_file.read_bytes().decode("utf-8"), paths


@pytest.fixture(scope="module")
def runs(zoo, mysql_db_url, tmp_path_factory):
    return {path: run_zoo(mysql_db_url, tmp_path_factory, path) for path in READ_PATHS}


@pytest.fixture(scope="module", params=READ_PATHS)
def exported(request, runs):
    table, text, _ = runs[request.param]
    return table, text


def test_each_zoo_run_took_the_read_path_it_forced(runs):
    assert {p.split(",")[0] for p in runs["connectorx"][2]} == {"ConnectorX binary protocol"}
    assert all(p.startswith("pymysql text protocol") for p in runs["pymysql"][2])


def test_both_read_paths_write_equal_files(runs):
    fast, compat = runs["connectorx"][0], runs["pymysql"][0]
    assert fast.schema == compat.schema
    assert fast.equals(compat)


def test_parquet_holds_exactly_what_mariadb_holds(mysql_url, mysql_db, exported):
    table, _ = exported
    actual = [{c: canonical(KINDS.get(c, "int"), v) for c, v in row.items()}
              for row in table.to_pylist()]
    compare(truth(mysql_url, mysql_db), actual, "parquet")


def test_csv_holds_exactly_what_mariadb_holds(mysql_url, mysql_db, exported):
    _, text = exported
    header, *records = csv_records(text)
    records.sort(key=lambda record: int(record[0][0]))
    names = [name for name, _ in header]
    assert names == ["id", *KINDS]
    actual = []
    for record in records:
        row = {}
        for name, (value, quoted) in zip(names, record, strict=True):
            kind = KINDS.get(name, "int")
            if kind == "geom":
                row[name] = canonical(kind, csv_value("bytes", value, quoted))
            else:
                row[name] = csv_value(kind, value, quoted)
        actual.append(row)
    compare(truth(mysql_url, mysql_db), actual, "csv")


def test_parquet_schema_has_the_documented_types(exported):
    table, _ = exported
    types = {f.name: f.type for f in table.schema}
    assert types["biu"] == pa.uint64() and types["iu"] == pa.int64()
    assert types["tiu"] == pa.int16() and types["ti"] == pa.int8()
    assert types["b1"] == pa.bool_() and types["bt"] == pa.bool_()
    assert types["b64"] == pa.uint64() and types["yr"] == pa.int16()
    assert types["dec65"] == pa.decimal256(65, 30) and types["decu"] == pa.decimal128(20, 0)
    assert types["ts"] == pa.timestamp("us", tz="UTC") and types["dt"] == pa.timestamp("us")
    assert types["tm"] == pa.string() and types["g"] == pa.binary()
    assert types["nul"] == pa.null()
    logical = {f.name: (f.metadata or {}).get(b"rivet.logical_type") for f in table.schema}
    assert logical["tm"] == b"mysql_time" and logical["g"] == b"ewkb"
    assert logical["en"] == b"enum" and logical["st"] == b"set"


def test_timestamps_are_the_stored_instants_and_datetimes_the_wall_clock(exported):
    table, _ = exported
    instants = table.column("ts").to_pylist()
    utc = dt.UTC
    assert instants[1] == dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=utc)
    assert instants[2] == dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=utc)
    assert instants[3] == dt.datetime(2024, 3, 10, 6, 59, 59, 999999, tzinfo=utc)
    assert table.column("dt").to_pylist()[2] == dt.datetime(2024, 3, 10, 2, 30)


def test_geometry_keeps_its_srid_as_ewkb(exported):
    table, _ = exported
    values = table.column("g").to_pylist()
    assert ewkb_parts(values[0]).startswith("0:0101000000")
    assert ewkb_parts(values[1]).startswith("4326:0101000000")
    assert ewkb_parts(values[2]).startswith("3857:0102000000")


def test_type_report_of_the_zoo_is_strict_clean_and_is_the_schema_written(
        zoo, mysql_db_url, exported, tmp_path_factory):
    from rivet_core.testing import RivetProject

    table, _ = exported
    project = RivetProject(tmp_path_factory.mktemp("zoo_mysql_report"))
    project.write_config(CONFIG.format(url=mysql_db_url, sql=EXPORT_SQL, read_path="auto"))
    outcome = project.run("check", "--type-report", "--strict", "--json", "-e", "zoo_parquet")
    outcome.assert_success()
    (report,) = outcome.json()["type_report"]["exports"]
    assert {c["fidelity"] for c in report["columns"]} <= {"exact", "widened"}
    written = {f.name: str(f.type) for f in table.schema}
    assert {c["name"]: c["arrow_type"] for c in report["columns"]} == written
