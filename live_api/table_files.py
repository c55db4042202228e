"""A table a user uploads (CSV in UTF-8, or XLSX): its rows as {column: text}, numbered as the
user sees them in a spreadsheet (the header is row 1). Hostile until read: size, row count,
column count and an XLSX's unpacked size are bounded before anything is parsed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import zipfile
from dataclasses import dataclass

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
MAX_COLUMNS = 64
MAX_CELL = 10_000  # characters
MAX_UNPACKED = 200 * 1024 * 1024  # an XLSX is a zip: refuse a bomb before opening it

Row = dict[str, str | None]


class TableError(ValueError):
    """The file as a whole cannot be read: the message says why."""


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[int, Row], ...]  # (row number in the file, values)


def read_table(content: bytes, content_type: str) -> Table:
    if len(content) > MAX_BYTES:
        raise TableError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    kind = content_type.split(";")[0].strip().lower()
    if kind == XLSX_TYPE or content[:4] == b"PK\x03\x04":
        return _rows(_xlsx_cells(content))
    if kind not in ("text/csv", "application/csv", "text/plain", ""):
        raise TableError(f"content type {kind!r}: send text/csv (UTF-8) or {XLSX_TYPE}")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(f"the CSV is not UTF-8 (byte {exc.start}): save it as UTF-8") from exc
    if "\x00" in text:
        raise TableError("the CSV holds a NUL character")
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        # at most the header, MAX_ROWS rows and one more (to say the file is too long)
        cells: list[list[object]] = [list(r) for r in itertools.islice(reader, MAX_ROWS + 2)]
        return _rows(cells)
    except csv.Error as exc:
        raise TableError(f"the CSV cannot be read: {exc}") from exc


def _xlsx_cells(content: bytes) -> list[list[object]]:
    import openpyxl  # imported here: only an XLSX upload needs it

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED:
                raise TableError("the XLSX unpacks to more than 200 MB")
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except TableError:
        raise
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise TableError(f"the file is not a readable XLSX workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        cells: list[list[object]] = []
        for values in sheet.iter_rows(values_only=True):
            cells.append(list(values[: MAX_COLUMNS + 1]))
            if len(cells) > MAX_ROWS + 1:
                break
        return cells
    finally:
        book.close()


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime):
        value = value.date() if value.time() == dt.time() else value
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    text = text.strip()
    return text or None


def _rows(cells: list[list[object]]) -> Table:
    if not cells:
        raise TableError("the file is empty: the first row names the columns")
    header = [_text(c) or "" for c in cells[0]]
    while header and not header[-1]:
        header.pop()
    if not header:
        raise TableError("the first row names no column")
    if len(header) > MAX_COLUMNS:
        raise TableError(f"more than {MAX_COLUMNS} columns")
    if len(set(header)) != len(header) or "" in header:
        raise TableError("every column needs a name, once: " + ", ".join(repr(h) for h in header))
    if len(cells) - 1 > MAX_ROWS:
        raise TableError(f"more than {MAX_ROWS} rows: split the file")
    rows = []
    for number, values in enumerate(cells[1:], start=2):
        texts = [_text(v) for v in values]
        if not any(texts):
            continue  # a blank line
        if any(t is not None and len(t) > MAX_CELL for t in texts):
            raise TableError(f"row {number}: a cell is longer than {MAX_CELL} characters")
        if len(texts) > len(header) and any(texts[len(header) :]):
            raise TableError(f"row {number} has more cells than the header has columns")
        rows.append(
            (number, {h: (texts[i] if i < len(texts) else None) for i, h in enumerate(header)})
        )
    return Table(tuple(header), tuple(rows))
