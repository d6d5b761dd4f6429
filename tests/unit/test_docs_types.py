"""docs/types.md says what the code does: its type tables equal the sources' mapping tables,
and its list of override spellings equals the parser's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rivet_mysql import typemap as mysql_typemap
from rivet_postgres import typemap as pg_typemap

from rivet_core.types import OVERRIDE_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "types.md"


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    """Cells of the first Markdown table in ``text``, header and rule excluded, backticks
    stripped."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split(" | ")]
        rows.append(cells)
    return rows


@pytest.mark.parametrize(("heading", "module"), [
    ("PostgreSQL", pg_typemap),
    ("MySQL and MariaDB", mysql_typemap),
])
def test_type_table_in_the_docs_is_the_mapping_the_code_uses(heading, module):
    rows = table_rows(section(DOC.read_text(), heading))
    documented = [tuple(cells[:4]) for cells in rows]
    assert documented == module.doc_rows()
    assert all(len(cells) == 6 for cells in rows), "every row has its CSV and Notes cells"


def test_every_override_spelling_is_documented_and_no_other():
    text = section(DOC.read_text(), "Overrides: `[exports.columns]`")
    paragraph = text[text.index("Accepted values"):text.index("Anything else")]
    documented = set(re.findall(r"`([a-z_0-9]+)`", paragraph))
    assert documented == set(OVERRIDE_TYPES)
    assert "decimal(p,s)" in paragraph


def test_doc_rows_cover_every_mapped_type():
    pg_rows = {row[0] for row in pg_typemap.doc_rows()}
    assert set(pg_typemap.TYPES) - {"numeric"} <= pg_rows
    my_rows = {row[0] for row in mysql_typemap.doc_rows()}
    assert set(mysql_typemap.TYPES) - {"decimal"} <= my_rows
