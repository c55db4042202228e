"""Reading an uploaded table (live_api.table_files): any bytes give rows or a TableError with a
reason, never another exception; spreadsheet cells come back as the text a user typed."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live_api.table_files import XLSX_TYPE, TableError, read_table


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=2000), kind=st.sampled_from(["text/csv", XLSX_TYPE, ""]))
def test_any_bytes_are_rows_or_a_reason(content: bytes, kind: str) -> None:
    try:
        table = read_table(content, kind)
    except TableError as exc:
        assert str(exc)
    else:
        assert all(number >= 2 for number, _ in table.rows)


def test_xlsx_cells_read_as_typed_and_rows_keep_their_numbers() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "hours", "day", "phone"])
    sheet.append(["A", 24.0, dt.datetime(2026, 3, 1), 13800001234])
    sheet.append([None, None, None, None])  # a blank row is skipped, numbers stay
    sheet.append(["B", 7.5, None, " 139 "])
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), XLSX_TYPE)
    assert table.columns == ("id", "hours", "day", "phone")
    assert table.rows == (
        (2, {"id": "A", "hours": "24", "day": "2026-03-01", "phone": "13800001234"}),
        (4, {"id": "B", "hours": "7.5", "day": None, "phone": "139"}),
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"id,id\nA,B\n", "once"),
        (b"id\nA,B\n", "more cells"),
        ("id\n名".encode("gb18030"), "UTF-8"),
    ],
)
def test_a_table_that_cannot_be_read_says_why(content: bytes, reason: str) -> None:
    with pytest.raises(TableError, match=reason):
        read_table(content, "text/csv")
