"""Pure CSV streaming: bytes in, complete rows out, never the whole file in memory.

A record ends at a newline outside quotes (an even number of `"` seen so far), so chunks
are cut only at record boundaries and `csv.reader` handles quoting, CRLF and newlines
inside quoted fields.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re

from sales_common.events import KNOWN_COLUMNS, REQUIRED_COLUMNS

_BOM = "\ufeff"
_LINE_END = re.compile(r"[\r\n]")


class CsvProblem(ValueError):
    """The upload cannot be accepted; `str(self)` names the problem for the client."""


class HeaderError(CsvProblem):
    def __init__(self, missing: list[str], unknown: list[str], duplicated: list[str]) -> None:
        parts = []
        if missing:
            parts.append(f"missing required columns: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown columns: {', '.join(unknown)}")
        if duplicated:
            parts.append(f"duplicated columns: {', '.join(duplicated)}")
        super().__init__("; ".join(parts))
        self.missing = missing
        self.unknown = unknown
        self.duplicated = duplicated


class EncodingProblem(CsvProblem):
    def __init__(self, offset: int) -> None:
        super().__init__(f"the file is not valid UTF-8: invalid byte at offset {offset}")
        self.offset = offset


class RecordTooLong(CsvProblem):
    pass


def check_header(cells: list[str]) -> list[str]:
    """Normalise header cells; raise HeaderError naming every problem."""
    columns = [cell.strip().lower() for cell in cells]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in KNOWN_COLUMNS]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or duplicated:
        raise HeaderError(missing, unknown, duplicated)
    return columns


class CsvRecordStream:
    """Feed byte chunks, receive parsed rows; also hashes and counts the bytes."""

    def __init__(self, max_record_chars: int = 1 << 20) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""
        self._at_start = True
        self.max_record_chars = max_record_chars
        self.bytes_read = 0
        self.sha256 = hashlib.sha256()

    def feed(self, chunk: bytes) -> list[list[str]]:
        self.sha256.update(chunk)
        text = self._decode(chunk, final=False)
        self.bytes_read += len(chunk)
        return self._complete_records(text)

    def close(self) -> list[list[str]]:
        """Parse whatever is left; the last line may lack its newline."""
        text = self._pending + self._decode(b"", final=True)
        self._pending = ""
        if text.count('"') % 2:
            raise CsvProblem("unterminated quoted field at the end of the file")
        return self._parse(text)

    def _decode(self, chunk: bytes, final: bool) -> str:
        buffered = len(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            raise EncodingProblem(self.bytes_read - buffered + exc.start) from exc
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix(_BOM)
        if "\x00" in text:  # PostgreSQL text cannot hold it, and no sales data has one
            raise CsvProblem("the file contains a NUL byte: not a text CSV")
        return text

    def _complete_records(self, text: str) -> list[list[str]]:
        buf = self._pending + text
        cut = _last_record_boundary(buf)
        self._pending = buf[cut:]
        if len(self._pending) > self.max_record_chars:
            raise RecordTooLong(
                f"a record is longer than {self.max_record_chars} characters "
                "(or a quoted field is never closed)"
            )
        return self._parse(buf[:cut]) if cut else []

    @staticmethod
    def _parse(text: str) -> list[list[str]]:
        # Blank lines parse as []; they carry no data and get no row number.
        try:
            return [row for row in csv.reader(io.StringIO(text, newline="")) if row]
        except csv.Error as exc:  # e.g. a NUL byte
            raise CsvProblem(f"the file is not valid CSV: {exc}") from exc


class CheckedRows:
    """An upload's data rows in order, each checked: the header first (HeaderError), then
    every field's length. Row n of the file is the n-th row returned; `rows` counts them."""

    def __init__(self, max_record_chars: int, max_field_chars: int) -> None:
        self._stream = CsvRecordStream(max_record_chars)
        self._max_field_chars = max_field_chars
        self.columns: list[str] | None = None
        self.rows = 0

    @property
    def bytes_read(self) -> int:
        return self._stream.bytes_read

    def content_sha256(self) -> str:
        return self._stream.sha256.hexdigest()

    def feed(self, chunk: bytes) -> list[list[str]]:
        return self._check(self._stream.feed(chunk))

    def close(self) -> list[list[str]]:
        rows = self._check(self._stream.close())
        if self.columns is None:
            raise CsvProblem("the file is empty: a header line is required")
        return rows

    def _check(self, records: list[list[str]]) -> list[list[str]]:
        if self.columns is None and records:
            self.columns = check_header(records[0])
            records = records[1:]
        limit = self._max_field_chars
        for cells in records:
            self.rows += 1
            if max(map(len, cells)) > limit:
                self._field_too_long(cells)
        return records

    def _field_too_long(self, cells: list[str]) -> None:
        # Cells past the header's columns are not forwarded (the row is rejected with
        # `field_count`), so only named fields count.
        assert self.columns is not None
        for column, value in zip(self.columns, cells, strict=False):
            if len(value) > self._max_field_chars:
                raise CsvProblem(
                    f"row {self.rows}: field '{column}' is longer than "
                    f"{self._max_field_chars} characters"
                )


def _last_record_boundary(buf: str) -> int:
    """Index just after the last line ending (LF, CR or CRLF) outside quotes, or 0.

    Cutting a CRLF between its CR and LF is harmless: the LF alone parses as a blank line.
    """
    last_newline = max(buf.rfind("\n"), buf.rfind("\r"))
    if last_newline < 0:
        return 0
    if buf.count('"', 0, last_newline) % 2 == 0:
        return last_newline + 1
    # Slow path: the last line ending sits inside a quoted field; walk them with parity.
    boundary, position, quotes = 0, 0, 0
    for match in _LINE_END.finditer(buf, 0, last_newline + 1):
        quotes += buf.count('"', position, match.start())
        if quotes % 2 == 0:
            boundary = match.end()
        position = match.start()
    return boundary
