"""Create ``demo.sqlite`` beside this script: a small shop, in the text forms the ``sqlite``
source reads (DATE ``YYYY-MM-DD``, DATETIME ``YYYY-MM-DD HH:MM:SS[.ffffff]``, TIMESTAMPTZ the
same plus ``+00:00``). Standard library only; run it again to start over.

    python make_demo_db.py [path]
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
from pathlib import Path

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    since DATE NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    amount DECIMAL(12,2) NOT NULL,
    placed_on DATE NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    note TEXT
);
"""


def build(path: Path) -> None:
    path.unlink(missing_ok=True)
    start = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
    customers = [(1, "Ada Lovelace", "2023-11-02"), (2, "Zoë Ørsted", "2024-01-15"),
                 (3, 'Bobby "Tables"', "2024-02-29")]
    orders = [
        (i, 1 + i % 3, f"{(i * 1337) % 50000 / 100:.2f}",
         (start.date() + dt.timedelta(days=i // 4)).isoformat(),
         (start + dt.timedelta(hours=i, microseconds=i * 250)).isoformat(" "),
         None if i % 5 else f"gift wrap, line {i}\nsecond line")
        for i in range(1, 201)
    ]
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", customers)
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", orders)
    conn.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("demo.sqlite")
    build(target)
    print(f"wrote {target}")
