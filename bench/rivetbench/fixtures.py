"""The fixture tables as SQL: names, sizes, DDL and the deterministic fill statements.

Pure text, no connections (:mod:`rivetbench.seed` runs it). Every value is arithmetic on the
row number (``generate_series`` on PostgreSQL, the ``seq_1_to_N`` sequence engine table on
MariaDB), never ``random()``, so two seedings give the same rows, and the two databases get
the same values wherever their types allow.

Four kinds of table:

- ``narrow``: bigint id, int, double, numeric(12,2), an instant, boolean, short text;
- ``wide``: shaped like a CMS ``content_items`` table, 21 columns: several texts from tens to
  a few thousand characters, a JSON document, a uuid, timestamps, ints, a numeric;
- ``types``: one column per interesting type (the "types_zoo" of the peer measurements),
  with edge values in the first rows and a row of NULLs (id 3);
- ``orders``: order lines shaped like TPC-H ``lineitem``: bigint keys, a line number, four
  numeric(15,2), three dates, char(1) flags, a padded char(10), two short varchars.

The ``small_*`` tables of the many-small-tables shape are ``narrow`` tables under another
name (:func:`many_small_tables`).

MariaDB's instant type is ``TIMESTAMP(6)``: like ``timestamptz`` it stores a UTC instant
and converts it to the session zone. The seeding session uses ``time_zone = '+00:00'``.
``DATETIME(6)`` (a wall-clock time, like ``timestamp without time zone``) is in the wide
and types tables too.

The fixture version is a digest of this SQL: change a statement and every table is
re-seeded on the next run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

KINDS = ("narrow", "wide", "types", "orders")

FULL_ROWS = {"narrow": 10_000_000, "wide": 2_000_000, "types": 4_000, "orders": 2_000_000}
SMOKE_ROWS = {"narrow": 50_000, "wide": 10_000, "types": 4_000, "orders": 50_000}
MEMORY_ROWS = (1_000_000, 10_000_000)
"""The two narrow sizes of the memory-growth check."""

SCALING_ROWS = (1_000_000, 10_000_000, 50_000_000)
"""The narrow sizes of the scaling shape (``--scaling-sizes`` picks others)."""

MANY_SMALL_SHAPES = ((20, 50_000), (200, 1_000))
"""``(tables, rows each)`` of the many-small-tables shape (``--many-small-shapes``)."""

STARTUP_ROWS = 1_000
"""The narrow table behind the start-up shape's ``check`` and ``run`` commands."""

BATCH_ROWS = {"narrow": 2_000_000, "wide": 250_000, "types": 4_000, "orders": 500_000}
"""Rows per INSERT ... SELECT while seeding (progress output, bounded transactions)."""

_SIZE_UNITS = {"k": 1_000, "m": 1_000_000}


def size_label(rows: int) -> str:
    """``10_000_000`` -> ``10m``, ``50_000`` -> ``50k``, ``1_500`` -> ``1500``."""
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if rows >= unit and rows % unit == 0:
            return f"{rows // unit}{suffix}"
    return str(rows)


def parse_size(text: str) -> int:
    """The inverse of :func:`size_label`: ``10m`` -> ``10_000_000``, ``50k`` -> ``50_000``,
    ``1500`` -> ``1_500``. Raises ``ValueError`` on anything else, or a count below 1."""
    cleaned = text.strip().lower().replace("_", "")
    unit = _SIZE_UNITS.get(cleaned[-1:], 1)
    digits = cleaned[:-1] if unit != 1 else cleaned
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"not a row count: {text!r} (e.g. 50k, 1m, 1500)")
    return int(digits) * unit


def parse_many_small_shape(text: str) -> tuple[int, int]:
    """``20x50k`` -> ``(20, 50_000)``: a number of tables and the rows of each."""
    count, sep, rows = text.strip().lower().partition("x")
    if not sep or not count.isdigit() or int(count) < 1:
        raise ValueError(f"not a many-small shape: {text!r} (TABLESxROWS, e.g. 20x50k)")
    return int(count), parse_size(rows)


def shape_label(count: int, rows: int) -> str:
    """``(20, 50_000)`` -> ``20x50k``."""
    return f"{count}x{size_label(rows)}"


@dataclass(frozen=True)
class Table:
    """One fixture table: its kind and row count; its name says both (``narrow_10m``).

    ``prefix`` and ``number`` name the copies of a kind that the many-small shape seeds
    (``small_1k_001``): same DDL and rows as the kind, another name."""

    kind: str
    rows: int
    prefix: str | None = None
    number: str | None = None

    @property
    def name(self) -> str:
        name = f"{self.prefix or self.kind}_{size_label(self.rows)}"
        return f"{name}_{self.number}" if self.number else name


def many_small_tables(count: int, rows: int) -> list[Table]:
    """The ``count`` narrow tables of ``rows`` rows each: ``small_50k_01`` ... ``small_50k_20``
    (numbers zero-padded to the width of ``count``)."""
    width = len(str(count))
    return [Table("narrow", rows, prefix="small", number=f"{n:0{width}d}")
            for n in range(1, count + 1)]


# ------------------------------------------------------------------------------ PostgreSQL

# A 64,000-character text to cut titles, summaries and bodies from: md5 hex of 1..2000 with
# two digits turned into spaces, so it reads as "words" and compresses like text, a little.
# Held as bytea: substr() of a UTF-8 text walks the characters from the start, of a bytea it
# does not (the corpus is ASCII, so bytes and characters coincide).
_PG_CORPUS = ("(SELECT convert_to(translate(string_agg(md5(g::text), '' ORDER BY g), '07', '  '),"
              " 'UTF8') AS b FROM generate_series(1, 2000) AS g) AS c")

_PG_DDL = {
    "narrow": """
CREATE TABLE {t} (
    id          bigint           NOT NULL,
    qty         integer          NOT NULL,
    score       double precision,
    amount      numeric(12,2)    NOT NULL,
    created_at  timestamptz      NOT NULL,
    active      boolean          NOT NULL,
    label       text             NOT NULL
)""",
    "wide": """
CREATE TABLE {t} (
    id            bigint        NOT NULL,
    uid           uuid          NOT NULL,
    tenant_id     integer       NOT NULL,
    author_id     bigint        NOT NULL,
    status        text          NOT NULL,
    content_type  varchar(32)   NOT NULL,
    title         text          NOT NULL,
    slug          text          NOT NULL,
    summary       text,
    body          text          NOT NULL,
    metadata      jsonb         NOT NULL,
    tags          text,
    language      varchar(8)    NOT NULL,
    word_count    integer       NOT NULL,
    view_count    bigint        NOT NULL,
    rating        numeric(5,2),
    is_published  boolean       NOT NULL,
    created_at    timestamptz   NOT NULL,
    updated_at    timestamptz   NOT NULL,
    published_at  timestamptz,
    deleted_at    timestamp
)""",
    "types": """
CREATE TABLE {t} (
    id               integer NOT NULL,
    c_smallint       smallint,
    c_int            integer,
    c_bigint         bigint,
    c_real           real,
    c_double         double precision,
    c_numeric_12_2   numeric(12,2),
    c_numeric_38_10  numeric(38,10),
    c_numeric        numeric,
    c_bool           boolean,
    c_text           text,
    c_varchar        varchar(50),
    c_char           char(10),
    c_bytea          bytea,
    c_date           date,
    c_time           time,
    c_timestamp      timestamp,
    c_timestamptz    timestamptz,
    c_interval       interval,
    c_json           json,
    c_jsonb          jsonb,
    c_uuid           uuid,
    c_int_array      integer[],
    c_text_array     text[],
    c_inet           inet
)""",
    "orders": """
CREATE TABLE {t} (
    id              bigint         NOT NULL,
    order_id        bigint         NOT NULL,
    part_id         bigint         NOT NULL,
    supplier_id     bigint         NOT NULL,
    line_number     integer        NOT NULL,
    quantity        numeric(15,2)  NOT NULL,
    extended_price  numeric(15,2)  NOT NULL,
    discount        numeric(15,2)  NOT NULL,
    tax             numeric(15,2)  NOT NULL,
    ship_date       date           NOT NULL,
    commit_date     date           NOT NULL,
    receipt_date    date           NOT NULL,
    return_flag     char(1)        NOT NULL,
    line_status     char(1)        NOT NULL,
    ship_mode       char(10)       NOT NULL,
    ship_instruct   varchar(25)    NOT NULL,
    comment         varchar(44)    NOT NULL
)""",
}

# Order lines (TPC-H ``lineitem``-like), both databases: rows come in blocks of 28 holding
# seven orders of 1, 2, ... 7 lines (``k`` the row in its block, ``j`` the order in it). An
# order's date is spread over 1992-01-01 .. 1998-08-02 (2,406 days); ship, commit and
# receipt dates follow it; the flags use TPC-H's "current date" 1995-06-17 (day 1,263).
_ORDER_BLOCK_SQL = """CASE WHEN k < 1 THEN 0 WHEN k < 3 THEN 1 WHEN k < 6 THEN 2 WHEN k < 10 THEN 3
                 WHEN k < 15 THEN 4 WHEN k < 21 THEN 5 ELSE 6 END"""

_PG_FILL = {
    "narrow": """
INSERT INTO {t}
SELECT i,
       (i * 7919) % 100000,
       CASE WHEN i % 17 = 0 THEN NULL ELSE ((i % 100003) * 0.001 + i / 1e7)::float8 END,
       ((i * 104729) % 10000000) / 100.0,
       timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second'
           + (i % 1000000) * interval '1 microsecond',
       i % 3 = 0,
       'item-' || (i % 100000)::text || CASE WHEN i % 2 = 0 THEN '-x' ELSE '' END
FROM generate_series({lo}::bigint, {hi}::bigint) AS i""",
    "wide": """
INSERT INTO {t}
SELECT i,
       md5(i::text)::uuid,
       1 + i % 500,
       1 + (i * 31) % 100000,
       (ARRAY['draft', 'review', 'published', 'archived'])[1 + i % 4],
       (ARRAY['article', 'page', 'video', 'podcast', 'gallery'])[1 + i % 5],
       initcap(convert_from(substr(c.b, 1 + (i * 7) % 60000, 40 + i % 80), 'UTF8')),
       'post-' || i || '-' || substr(md5(i::text), 1, 12),
       CASE WHEN i % 11 = 0 THEN NULL
            ELSE convert_from(substr(c.b, 1 + (i * 13) % 50000, 80 + (i * 13) % 320), 'UTF8') END,
       convert_from(substr(c.b, 1 + (i * 29) % 40000, 200 + (i * 37) % 2000), 'UTF8'),
       jsonb_build_object(
           'source', (ARRAY['web', 'import', 'api'])[1 + i % 3],
           'revision', i % 7,
           'flags', jsonb_build_array(i % 2 = 0, i % 3 = 0),
           'seo', jsonb_build_object('keywords',
                                     convert_from(substr(c.b, 1 + (i * 3) % 60000, 60), 'UTF8'),
                                     'score', (i % 100) / 10.0),
           'extra', convert_from(substr(c.b, 1 + (i * 17) % 60000, 100 + i % 200), 'UTF8')),
       CASE WHEN i % 13 = 0 THEN NULL
            ELSE 'tag' || i % 50 || ',tag' || i % 7 || ',topic-' || i % 300 END,
       (ARRAY['en', 'de', 'fr', 'es', 'pt', 'ja'])[1 + i % 6],
       (200 + (i * 37) % 2000) / 6,
       (i * 2654435761) % 10000000,
       CASE WHEN i % 9 = 0 THEN NULL ELSE ((i * 7) % 501) / 100.0 END,
       i % 4 = 2,
       timestamptz '2021-01-01 00:00:00+00' + i * interval '13 seconds',
       timestamptz '2021-01-01 00:00:00+00' + i * interval '13 seconds'
           + (i % 86400) * interval '1 second' + (i % 997) * interval '1 microsecond',
       CASE WHEN i % 4 = 2
            THEN timestamptz '2021-01-01 01:00:00+00' + i * interval '13 seconds' END,
       CASE WHEN i % 4 = 3
            THEN timestamp '2024-01-01 00:00:00' + i * interval '1 second' END
FROM generate_series({lo}::int, {hi}::int) AS i, """ + _PG_CORPUS,
    "types": """
INSERT INTO {t}
SELECT i,
       ((i * 37) % 65535) - 32767,
       ((i * 2654435761) % 4294967295) - 2147483647,
       CASE WHEN i % 2 = 0 THEN i * 922337203685477 ELSE -i * 922337203685477 END,
       (i * 1.5)::real / 7,
       CASE WHEN i = 5 THEN 'NaN'::float8 ELSE i / 3.0::float8 END,
       ((i * 1234567.89) % 9999999999.99)::numeric(12,2),
       ('1234567890123456789012345678.' || lpad((i * 7919 % 10000000000)::text, 10, '0'))
           ::numeric(38,10),
       CASE WHEN i = 1 THEN 3.141592653589793238462643383279 ELSE i / 7.0 END,
       i % 2 = 0,
       CASE i % 5 WHEN 0 THEN 'Grüße ' || i WHEN 1 THEN '日本語 ' || i
                  WHEN 2 THEN 'emoji 🎉 ' || i
                  WHEN 3 THEN 'quote "x", y' || E'\\n' || 'line ' || i
                  ELSE 'plain ' || md5(i::text) END,
       'v' || i,
       'c' || i % 100,
       decode(md5(i::text), 'hex'),
       date '2000-01-01' + i,
       CASE WHEN i = 2 THEN time '23:59:59.999999'
            ELSE time '00:00:00' + i * interval '21.599 seconds' END,
       timestamp '2001-02-03 04:05:06.789' + i * interval '1 hour 1 microsecond',
       timestamptz '2001-02-03 04:05:06.789+05:30' + i * interval '1 hour',
       i * interval '1 day 2 hours' - interval '3 months',
       CASE WHEN i = 4 THEN 'null'::json
            ELSE json_build_object('i', i, 'nested', json_build_object('a', json_build_array(1, 2)),
                                   'none', NULL) END,
       jsonb_build_object('i', i, 'k', 'v' || i % 10, 'arr', jsonb_build_array(i, 'x')),
       md5((i + 1)::text)::uuid,
       ARRAY[i, i + 1, NULL]::integer[],
       ARRAY['a' || i, 'b,c', NULL]::text[],
       ('10.' || i % 256 || '.0.0/16')::inet
FROM generate_series({lo}::int, {hi}::int) AS i""",
    "orders": """
INSERT INTO {t}
SELECT i, o, p, 1 + (p + (i % 4) * 2503) % 10000, line,
       q, (q * (90000 + (p / 10) % 20001 + 100 * (p % 1000))) / 100.0,
       (i * 13 % 11) / 100.0, (i * 7 % 9) / 100.0,
       date '1992-01-01' + s_off, date '1992-01-01' + c_off, date '1992-01-01' + r_off,
       CASE WHEN r_off > 1263 THEN 'N' WHEN i % 2 = 0 THEN 'R' ELSE 'A' END,
       CASE WHEN s_off > 1263 THEN 'O' ELSE 'F' END,
       (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[1 + (i * 3) % 7],
       (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[1 + (i * 5) % 4],
       translate(substr(md5(i::text) || md5((i + 1)::text), 1, (10 + (i * 13) % 35)::int),
                 '07', '  ')
FROM (SELECT i, o, line, p, q, s_off, c_off, s_off + 1 + ((i * 5) % 30)::int AS r_off
      FROM (SELECT i, o, line, p, q, ((o * 37) % 2406 + 1 + (i * 11) % 121)::int AS s_off,
                   ((o * 37) % 2406 + 30 + (i * 17) % 61)::int AS c_off
            FROM (SELECT i, b * 7 + j + 1 AS o, k - j * (j + 1) / 2 + 1 AS line, p, q
                  FROM (SELECT i, k, b, p, q, """ + _ORDER_BLOCK_SQL + """ AS j
                        FROM (SELECT i, (i - 1) % 28 AS k, (i - 1) / 28 AS b,
                                     1 + (i * 7919) % 200000 AS p, 1 + (i * 31) % 50 AS q
                              FROM generate_series({lo}::bigint, {hi}::bigint) AS i) AS s1
                       ) AS s2) AS s3) AS s4) AS s5""",
}

_PG_NULL_ROW = """
UPDATE {t} SET c_smallint = NULL, c_int = NULL, c_bigint = NULL, c_real = NULL,
    c_double = NULL, c_numeric_12_2 = NULL, c_numeric_38_10 = NULL, c_numeric = NULL,
    c_bool = NULL, c_text = NULL, c_varchar = NULL, c_char = NULL, c_bytea = NULL,
    c_date = NULL, c_time = NULL, c_timestamp = NULL, c_timestamptz = NULL, c_interval = NULL,
    c_json = NULL, c_jsonb = NULL, c_uuid = NULL, c_int_array = NULL, c_text_array = NULL,
    c_inet = NULL
WHERE id = 3"""


def pg_create(table: Table) -> list[str]:
    """Statements that (re)create an empty fixture table, without its primary key."""
    return [f"DROP TABLE IF EXISTS {table.name}", _PG_DDL[table.kind].format(t=table.name)]


def pg_fill(table: Table, lo: int, hi: int) -> str:
    """The INSERT ... SELECT of rows ``lo`` to ``hi`` (inclusive)."""
    return _PG_FILL[table.kind].format(t=table.name, lo=lo, hi=hi)


def pg_finish(table: Table) -> list[str]:
    """After the last batch: the primary key (built once, faster than row by row), the
    row of NULLs of the types table. ``VACUUM ANALYZE`` runs separately (not in a
    transaction)."""
    statements = [f"ALTER TABLE {table.name} ADD PRIMARY KEY (id)"]
    if table.kind == "types":
        statements.append(_PG_NULL_ROW.format(t=table.name))
    return statements


# --------------------------------------------------------------------------------- MariaDB

_MY_OPTS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

_MY_DDL = {
    "narrow": """
CREATE TABLE {t} (
    id          BIGINT         NOT NULL,
    qty         INT            NOT NULL,
    score       DOUBLE         NULL,
    amount      DECIMAL(12,2)  NOT NULL,
    created_at  TIMESTAMP(6)   NULL,
    active      BOOL           NOT NULL,
    label       VARCHAR(32)    NOT NULL,
    PRIMARY KEY (id)
) """ + _MY_OPTS,
    "wide": """
CREATE TABLE {t} (
    id            BIGINT         NOT NULL,
    uid           CHAR(36)       NOT NULL,
    tenant_id     INT            NOT NULL,
    author_id     BIGINT         NOT NULL,
    status        VARCHAR(16)    NOT NULL,
    content_type  VARCHAR(32)    NOT NULL,
    title         TEXT           NOT NULL,
    slug          VARCHAR(64)    NOT NULL,
    summary       TEXT           NULL,
    body          MEDIUMTEXT     NOT NULL,
    metadata      JSON           NOT NULL,
    tags          VARCHAR(255)   NULL,
    language      VARCHAR(8)     NOT NULL,
    word_count    INT            NOT NULL,
    view_count    BIGINT         NOT NULL,
    rating        DECIMAL(5,2)   NULL,
    is_published  BOOL           NOT NULL,
    created_at    TIMESTAMP(6)   NULL,
    updated_at    TIMESTAMP(6)   NULL,
    published_at  TIMESTAMP(6)   NULL,
    deleted_at    DATETIME(6)    NULL,
    PRIMARY KEY (id)
) """ + _MY_OPTS,
    "types": """
CREATE TABLE {t} (
    id                 INT NOT NULL,
    c_tinyint          TINYINT,
    c_smallint         SMALLINT,
    c_mediumint        MEDIUMINT,
    c_int              INT,
    c_bigint           BIGINT,
    c_bigint_unsigned  BIGINT UNSIGNED,
    c_float            FLOAT,
    c_double           DOUBLE,
    c_decimal_12_2     DECIMAL(12,2),
    c_decimal_38_10    DECIMAL(38,10),
    c_bit8             BIT(8),
    c_bool             BOOL,
    c_char             CHAR(10),
    c_varchar          VARCHAR(50),
    c_text             TEXT,
    c_blob             BLOB,
    c_varbinary        VARBINARY(32),
    c_date             DATE,
    c_time             TIME(6),
    c_datetime         DATETIME(6),
    c_timestamp        TIMESTAMP(6) NULL,
    c_year             YEAR,
    c_json             JSON,
    c_enum             ENUM('small', 'medium', 'large'),
    c_set              SET('a', 'b', 'c'),
    PRIMARY KEY (id)
) """ + _MY_OPTS,
    "orders": """
CREATE TABLE {t} (
    id              BIGINT         NOT NULL,
    order_id        BIGINT         NOT NULL,
    part_id         BIGINT         NOT NULL,
    supplier_id     BIGINT         NOT NULL,
    line_number     INT            NOT NULL,
    quantity        DECIMAL(15,2)  NOT NULL,
    extended_price  DECIMAL(15,2)  NOT NULL,
    discount        DECIMAL(15,2)  NOT NULL,
    tax             DECIMAL(15,2)  NOT NULL,
    ship_date       DATE           NOT NULL,
    commit_date     DATE           NOT NULL,
    receipt_date    DATE           NOT NULL,
    return_flag     CHAR(1)        NOT NULL,
    line_status     CHAR(1)        NOT NULL,
    ship_mode       CHAR(10)       NOT NULL,
    ship_instruct   VARCHAR(25)    NOT NULL,
    comment         VARCHAR(44)    NOT NULL,
    PRIMARY KEY (id)
) """ + _MY_OPTS,
}

_MY_CORPUS = "bench_corpus"
"""Helper table holding the text corpus (the same text as on PostgreSQL)."""

_MY_CORPUS_SQL = [
    f"DROP TABLE IF EXISTS {_MY_CORPUS}",
    # latin1, so SUBSTR() is not a walk over multi-byte characters (the corpus is ASCII).
    f"CREATE TABLE {_MY_CORPUS} (txt MEDIUMTEXT CHARACTER SET latin1 NOT NULL) ENGINE=InnoDB",
    "SET SESSION group_concat_max_len = 1048576",
    f"INSERT INTO {_MY_CORPUS} SELECT REPLACE(REPLACE("
    "GROUP_CONCAT(MD5(seq) ORDER BY seq SEPARATOR ''), '0', ' '), '7', ' ') FROM seq_1_to_2000",
]

# Row numbers as a signed column: the sequence engine's ``seq`` is BIGINT UNSIGNED, on which
# MariaDB refuses any subtraction that would go below zero.
_MY_SEQ = ("(SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_{n}"
           " WHERE seq BETWEEN {lo} AND {hi}) AS s")

_MY_FILL = {
    "narrow": """
INSERT INTO {t}
SELECT seq,
       (seq * 7919) % 100000,
       IF(seq % 17 = 0, NULL, (seq % 100003) * 0.001 + seq / 1e7),
       ((seq * 104729) % 10000000) / 100,
       TIMESTAMP'2020-01-01 00:00:00' + INTERVAL seq SECOND
           + INTERVAL (seq % 1000000) MICROSECOND,
       seq % 3 = 0,
       CONCAT('item-', seq % 100000, IF(seq % 2 = 0, '-x', ''))
FROM """ + _MY_SEQ,
    "wide": """
INSERT INTO {t}
SELECT seq,
       CONCAT_WS('-', SUBSTR(MD5(seq), 1, 8), SUBSTR(MD5(seq), 9, 4), SUBSTR(MD5(seq), 13, 4),
                 SUBSTR(MD5(seq), 17, 4), SUBSTR(MD5(seq), 21, 12)),
       1 + seq % 500,
       1 + (seq * 31) % 100000,
       ELT(1 + seq % 4, 'draft', 'review', 'published', 'archived'),
       ELT(1 + seq % 5, 'article', 'page', 'video', 'podcast', 'gallery'),
       SUBSTR(c.txt, 1 + (seq * 7) % 60000, 40 + seq % 80),
       CONCAT('post-', seq, '-', SUBSTR(MD5(seq), 1, 12)),
       IF(seq % 11 = 0, NULL, SUBSTR(c.txt, 1 + (seq * 13) % 50000, 80 + (seq * 13) % 320)),
       SUBSTR(c.txt, 1 + (seq * 29) % 40000, 200 + (seq * 37) % 2000),
       JSON_OBJECT(
           'source', ELT(1 + seq % 3, 'web', 'import', 'api'),
           'revision', seq % 7,
           'flags', JSON_ARRAY(seq % 2 = 0, seq % 3 = 0),
           'seo', JSON_OBJECT('keywords', SUBSTR(c.txt, 1 + (seq * 3) % 60000, 60),
                              'score', (seq % 100) / 10.0),
           'extra', SUBSTR(c.txt, 1 + (seq * 17) % 60000, 100 + seq % 200)),
       IF(seq % 13 = 0, NULL,
          CONCAT('tag', seq % 50, ',tag', seq % 7, ',topic-', seq % 300)),
       ELT(1 + seq % 6, 'en', 'de', 'fr', 'es', 'pt', 'ja'),
       (200 + (seq * 37) % 2000) DIV 6,
       (seq * 2654435761) % 10000000,
       IF(seq % 9 = 0, NULL, ((seq * 7) % 501) / 100),
       seq % 4 = 2,
       TIMESTAMP'2021-01-01 00:00:00' + INTERVAL (seq * 13) SECOND,
       TIMESTAMP'2021-01-01 00:00:00' + INTERVAL (seq * 13 + seq % 86400) SECOND
           + INTERVAL (seq % 997) MICROSECOND,
       IF(seq % 4 = 2, TIMESTAMP'2021-01-01 01:00:00' + INTERVAL (seq * 13) SECOND, NULL),
       IF(seq % 4 = 3, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, NULL)
FROM """ + _MY_SEQ + f" JOIN {_MY_CORPUS} AS c",
    "types": """
INSERT INTO {t}
SELECT seq,
       (seq % 256) - 128,
       ((seq * 37) % 65535) - 32767,
       ((seq * 2003) % 16777215) - 8388607,
       ((seq * 2654435761) % 4294967295) - 2147483647,
       IF(seq % 2 = 0, seq * 922337203685477, -(seq * 922337203685477)),
       IF(seq = 1, 18446744073709551615, CAST(seq AS UNSIGNED) * 4611686018427387),
       seq * 1.5 / 7,
       seq / 3e0,
       (seq * 1234567.89) % 9999999999.99,
       CAST(CONCAT('1234567890123456789012345678.', LPAD(seq * 7919 % 10000000000, 10, '0'))
            AS DECIMAL(38,10)),
       seq % 256,
       seq % 2 = 0,
       CONCAT('c', seq % 100),
       CONCAT('v', seq),
       CASE seq % 5 WHEN 0 THEN CONCAT('Grüße ', seq) WHEN 1 THEN CONCAT('日本語 ', seq)
                    WHEN 2 THEN CONCAT('emoji 🎉 ', seq)
                    WHEN 3 THEN CONCAT('quote "x", y', CHAR(10), 'line ', seq)
                    ELSE CONCAT('plain ', MD5(seq)) END,
       UNHEX(MD5(seq)),
       UNHEX(MD5(seq + 1)),
       DATE'2000-01-01' + INTERVAL seq DAY,
       CASE seq WHEN 2 THEN '-838:59:59' WHEN 4 THEN '100:00:00.5'
                ELSE SEC_TO_TIME((seq * 21.599) % 86400) END,
       TIMESTAMP'2001-02-03 04:05:06.789' + INTERVAL seq HOUR + INTERVAL seq MICROSECOND,
       TIMESTAMP'2001-02-03 04:05:06.789' + INTERVAL seq HOUR,
       1901 + seq % 255,
       IF(seq = 4, 'null',
          JSON_OBJECT('i', seq, 'nested', JSON_OBJECT('a', JSON_ARRAY(1, 2)), 'none', NULL)),
       ELT(1 + seq % 3, 'small', 'medium', 'large'),
       ELT(1 + seq % 4, '', 'a', 'a,b', 'a,b,c')
FROM """ + _MY_SEQ,
    "orders": """
INSERT INTO {t}
SELECT seq, o, p, 1 + (p + (seq % 4) * 2503) % 10000, line,
       q, (q * (90000 + (p DIV 10) % 20001 + 100 * (p % 1000))) / 100,
       (seq * 13 % 11) / 100, (seq * 7 % 9) / 100,
       DATE'1992-01-01' + INTERVAL s_off DAY, DATE'1992-01-01' + INTERVAL c_off DAY,
       DATE'1992-01-01' + INTERVAL r_off DAY,
       CASE WHEN r_off > 1263 THEN 'N' WHEN seq % 2 = 0 THEN 'R' ELSE 'A' END,
       IF(s_off > 1263, 'O', 'F'),
       ELT(1 + (seq * 3) % 7, 'REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'),
       ELT(1 + (seq * 5) % 4, 'DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'),
       REPLACE(REPLACE(SUBSTR(CONCAT(MD5(seq), MD5(seq + 1)), 1, 10 + (seq * 13) % 35),
                       '0', ' '), '7', ' ')
FROM (SELECT seq, o, line, p, q, s_off, c_off, s_off + 1 + (seq * 5) % 30 AS r_off
      FROM (SELECT seq, o, line, p, q, (o * 37) % 2406 + 1 + (seq * 11) % 121 AS s_off,
                   (o * 37) % 2406 + 30 + (seq * 17) % 61 AS c_off
            FROM (SELECT seq, b * 7 + j + 1 AS o, k - j * (j + 1) DIV 2 + 1 AS line, p, q
                  FROM (SELECT seq, k, b, p, q, """ + _ORDER_BLOCK_SQL + """ AS j
                        FROM (SELECT seq, (seq - 1) % 28 AS k, (seq - 1) DIV 28 AS b,
                                     1 + (seq * 7919) % 200000 AS p, 1 + (seq * 31) % 50 AS q
                              FROM """ + _MY_SEQ + """) AS s1
                       ) AS s2) AS s3) AS s4) AS s5""",
}

_MY_NULL_ROW = """
UPDATE {t} SET c_tinyint = NULL, c_smallint = NULL, c_mediumint = NULL, c_int = NULL,
    c_bigint = NULL, c_bigint_unsigned = NULL, c_float = NULL, c_double = NULL,
    c_decimal_12_2 = NULL, c_decimal_38_10 = NULL, c_bit8 = NULL, c_bool = NULL,
    c_char = NULL, c_varchar = NULL, c_text = NULL, c_blob = NULL, c_varbinary = NULL,
    c_date = NULL, c_time = NULL, c_datetime = NULL, c_timestamp = NULL, c_year = NULL,
    c_json = NULL, c_enum = NULL, c_set = NULL
WHERE id = 3"""

MYSQL_SESSION = ["SET SESSION time_zone = '+00:00'", "SET SESSION sql_mode = 'STRICT_ALL_TABLES'"]
"""Session settings of the seeding connection: instants are given in UTC."""


def mysql_create(table: Table) -> list[str]:
    statements = [f"DROP TABLE IF EXISTS {table.name}", _MY_DDL[table.kind].format(t=table.name)]
    if table.kind == "wide":
        statements = _MY_CORPUS_SQL + statements
    return statements


def mysql_fill(table: Table, lo: int, hi: int) -> str:
    return _MY_FILL[table.kind].format(t=table.name, lo=lo, hi=hi, n=table.rows)


def mysql_finish(table: Table) -> list[str]:
    statements = []
    if table.kind == "types":
        statements.append(_MY_NULL_ROW.format(t=table.name))
    if table.kind == "wide":
        statements.append(f"DROP TABLE IF EXISTS {_MY_CORPUS}")
    statements.append(f"ANALYZE TABLE {table.name}")
    return statements


# ---------------------------------------------------------------------------------- common

def batches(table: Table) -> list[tuple[int, int]]:
    """``(lo, hi)`` row ranges, inclusive, covering 1..rows."""
    step = BATCH_ROWS[table.kind]
    return [(lo, min(lo + step - 1, table.rows)) for lo in range(1, table.rows + 1, step)]


def fixture_version(kind: str) -> str:
    """A digest of every statement that shapes a table of ``kind``, on both databases."""
    text = "\n".join([_PG_DDL[kind], _PG_FILL[kind], _MY_DDL[kind], _MY_FILL[kind],
                      _PG_NULL_ROW, _MY_NULL_ROW, *_MY_CORPUS_SQL, *MYSQL_SESSION])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def select_all(db_kind: str, database: str, table: Table) -> str:
    """The query every tool exports: all columns, in table order."""
    schema = "public" if db_kind == "pg" else database
    return f"SELECT * FROM {schema}.{table.name}"
