"""File naming and secret redaction: pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

from rivet_core.naming import file_name, new_run_id
from rivet_core.redact import forget_secrets, redact, register_secret


def test_run_id_is_sortable_utc_and_unique():
    moment = dt.datetime(2026, 11, 27, 12, 15, 30, tzinfo=dt.UTC)
    a, b = new_run_id(moment), new_run_id(moment)
    assert a.startswith("20261127T121530Z-") and a != b


def test_file_names_carry_the_run_id_and_zero_padded_parts():
    assert file_name("orders", "R", "parquet") == "orders_R.parquet"
    assert file_name("orders", "R", "csv.gz", part=3) == "orders_R_part0003.csv.gz"
    assert file_name("o", "R", "parquet", chunk=12, part=1) == "o_R_chunk000012_part0001.parquet"
    assert sorted(file_name("o", "R", "x", part=p) for p in (10, 9)) == [
        file_name("o", "R", "x", part=9), file_name("o", "R", "x", part=10)]


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql://user:pw@host/db", "postgresql://user:REDACTED@host/db"),
    ("a mysql://u:p@h:3306/d and postgres://x:y@z/w", "a mysql://u:REDACTED@h:3306/d and "
     "postgres://x:REDACTED@z/w"),
    ("user@host and a@b.com", "user@host and a@b.com"),
    ("host=h password=hunter2 user=u", "host=h password=REDACTED user=u"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("€ — кириллица", "€ — кириллица"),
])
def test_redact_masks_url_and_dsn_passwords(text, expected):
    assert redact(text) == expected
    assert redact(redact(text)) == expected


def test_registered_secret_is_masked_anywhere():
    try:
        register_secret("correct-horse")
        assert redact('FATAL: bad "correct-horse"') == 'FATAL: bad "REDACTED"'
        register_secret("ab")  # too short to mask safely
        assert redact("abc") == "abc"
    finally:
        forget_secrets()
