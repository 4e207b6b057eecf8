"""Streaming readers and writers for CSV and XLSX contact files (bounded memory, any size)."""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO

XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0"
DELIMITERS = (",", ";", "\t", "|")
_BLOCK = 1 << 20
# Decompression-bomb limits for XLSX: real sheets unpack at 5–20:1 (a 200,000-row export is 14:1).
XLSX_MAX_UNPACKED = 200 * 1024 * 1024
XLSX_MAX_RATIO = 100
XLSX_RATIO_FROM = 1024 * 1024  # small members (styles, themes) may compress better; only big ones count


class FileFormatError(ValueError):
    """The file cannot be read as a contact table."""


def detect_encoding(path: Path) -> str:
    """`utf-8-sig`, `utf-16`, `utf-8` or `gb18030` (Excel in China saves GBK, a subset of it).

    The whole file is checked block by block at C speed, so a GBK byte late in a large
    file is not mistaken for UTF-8.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"  # Excel's "Unicode text" export
        for encoding in ("utf-8", "gb18030"):
            fh.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            try:
                for block in iter(lambda: fh.read(_BLOCK), b""):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
                return encoding
            except UnicodeDecodeError:
                continue
    raise FileFormatError("not UTF-8, UTF-16 or GBK/GB18030 text; save the file as UTF-8 CSV")


def detect_delimiter(header_line: str) -> str:
    """The delimiter used most in the header line (headers rarely contain one); `,` if none."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class Table(ABC):
    """Header and rows of a CSV or XLSX file, read lazily; `progress()` gives (done, total)."""

    headers: list[str]
    description: str

    @abstractmethod
    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(row number in the file, cells) for each data row."""

    @abstractmethod
    def progress(self) -> tuple[int, int | None]:
        """(rows read, rows in all when known)."""

    @abstractmethod
    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CsvTable(Table):
    def __init__(self, path: Path) -> None:
        self.encoding = detect_encoding(path)
        self._raw: BinaryIO = path.open("rb")
        self._size = path.stat().st_size
        self._text = io.TextIOWrapper(self._raw, encoding=self.encoding, newline="")
        first = self._text.readline()
        self.delimiter = detect_delimiter(first)
        header_rows = list(csv.reader([first], delimiter=self.delimiter))
        if not header_rows or not any(h.strip() for h in header_rows[0]):
            self.close()
            raise FileFormatError("the file is empty or its first line has no headers")
        self.headers = header_rows[0]
        self._reader = csv.reader(self._text, delimiter=self.delimiter)
        shown = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}[self.delimiter]
        self.description = f"CSV, {self.encoding}, {shown}-separated"

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        # Row numbers as a spreadsheet shows them: the header is row 1. A quoted cell with
        # line breaks still counts as one row.
        try:
            for number, row in enumerate(self._reader, start=2):
                yield number, _without_nul(row)
        except csv.Error as exc:
            raise FileFormatError(f"row {self._reader.line_num}: {exc}") from None

    def progress(self) -> tuple[int, int | None]:
        try:
            return self._raw.tell(), self._size
        except ValueError:  # closed
            return self._size, self._size

    def close(self) -> None:
        self._text.close()


def _without_nul(row: list[str]) -> list[str]:
    # A NUL byte never means anything in a spreadsheet cell, and PostgreSQL text cannot hold one.
    return [c.replace("\x00", "") for c in row] if any("\x00" in c for c in row) else row


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers and ids typed as numbers
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def check_xlsx_size(path: Path) -> None:
    """Refuse a workbook that would unpack to too much (a zip bomb) before openpyxl opens it.

    The sizes come from the zip's directory; zipfile never unpacks more than a member declares,
    so a member that lies about its size fails its read instead of growing.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileFormatError(f"{path.name} is not a readable .xlsx workbook: {exc}") from None
    unpacked = sum(m.file_size for m in members)
    if unpacked > XLSX_MAX_UNPACKED:
        raise FileFormatError(f"{path.name} unpacks to {unpacked // (1024 * 1024)} MB, over the "
                              f"{XLSX_MAX_UNPACKED // (1024 * 1024)} MB limit; save it as CSV or split it")
    for member in members:
        if member.file_size > XLSX_RATIO_FROM and member.file_size > XLSX_MAX_RATIO * max(member.compress_size, 1):
            raise FileFormatError(f"{path.name} looks like a decompression bomb: {member.filename} unpacks "
                                  f"{member.file_size // max(member.compress_size, 1)} times its packed size "
                                  f"(the limit is {XLSX_MAX_RATIO}); save the sheet as CSV")


class XlsxTable(Table):
    def __init__(self, path: Path) -> None:
        check_xlsx_size(path)
        # deferred: openpyxl is heavy and only the XLSX path needs it
        from openpyxl import load_workbook

        try:
            # read_only streams the sheet XML; data_only gives cached values, never formulas.
            self._book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise FileFormatError(f"not a readable .xlsx workbook: {exc}") from None
        sheet = self._book.worksheets[0]
        self._total = sheet.max_row
        self._iter = sheet.iter_rows(values_only=True)
        self._done = 0
        self._header_row = 0
        for values in self._iter:
            self._header_row += 1
            if any(v not in (None, "") for v in values):
                self.headers = [_cell_text(v) for v in values]
                break
        else:
            self.close()
            raise FileFormatError("the first sheet is empty")
        self.description = f"XLSX, sheet {sheet.title!r}"

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(self._iter, start=self._header_row + 1):
            self._done = number
            yield number, _without_nul([_cell_text(v) for v in values])

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    def close(self) -> None:
        self._book.close()


def open_table(path: Path) -> Table:
    """A CSV or XLSX table, chosen by the file's first bytes, not its name."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == XLSX_MAGIC:
        return XlsxTable(path)
    if magic == XLS_MAGIC:
        raise FileFormatError("old Excel .xls files are not supported; save the sheet as .xlsx or CSV")
    return CsvTable(path)


# OWASP "CSV injection": a cell starting with one of these is run as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a cell that a spreadsheet would read as a formula with `'`, so it stays text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class TableWriter:
    """Write rows to CSV (UTF-8 with BOM, which Excel opens correctly) or XLSX, streaming."""

    def __init__(self, path: Path, headers: list[str], *, fmt: str | None = None) -> None:
        self.path = path
        self.fmt = fmt or ("xlsx" if path.suffix.lower() == ".xlsx" else "csv")
        self._tmp = path.with_name(path.name + ".tmp")
        if self.fmt == "xlsx":
            # deferred: openpyxl is heavy and only the XLSX path needs it
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet("contacts")
            self._sheet.append(headers)
        else:
            self._fh = self._tmp.open("w", newline="", encoding="utf-8-sig")
            self._csv = csv.writer(self._fh)
            self._csv.writerow(headers)

    def write(self, cells: list[str]) -> None:
        safe = [neutralise(c) for c in cells]
        if self.fmt == "xlsx":
            # deferred: openpyxl is heavy and only the XLSX path needs it
            from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

            # XML 1.0 cannot hold most control characters; openpyxl would refuse the cell.
            self._sheet.append([ILLEGAL_CHARACTERS_RE.sub("", c) for c in safe])
        else:
            self._csv.writerow(safe)

    def finish(self) -> None:
        """Move the finished file into place (a crash never leaves half a file under the name)."""
        if self.fmt == "xlsx":
            self._book.save(self._tmp)
        else:
            self._fh.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        if self.fmt != "xlsx":
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
