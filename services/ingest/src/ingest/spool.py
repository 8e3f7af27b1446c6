"""Local spool files: an upload is received whole before anything of it is published.

The client's pace then never holds a Kafka transaction open: the transaction lasts as long
as publishing from local disk takes. Memory stays flat (rows go to disk as they are read),
and a disk budget shared by every upload bounds the spool.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Iterator
from types import TracebackType

import orjson
from sales_common.errors import ServiceUnavailable
from sales_common.pii import FieldCipher

from ingest.config import SpoolSettings

_BUFFER_BYTES = 1 << 20
# (field count, cells JSON, customer id) of a row, as the spool gives it back.
SpooledRow = tuple[int, bytes, str | None]


class SpoolFull(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("the upload spool is full; retry shortly", retry_after_s=10)


class SpoolBudget:
    """Disk bytes left for the uploads this process is receiving (spools are written from
    worker threads, hence the lock)."""

    def __init__(self, max_bytes: int) -> None:
        self.free = max_bytes
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            if size > self.free:
                raise SpoolFull
            self.free -= size

    def give(self, size: int) -> None:
        with self._lock:
            self.free += size


class Spool:
    """One upload's checked rows in an unnamed temp file (nothing is left on disk when the
    process dies), one line per row: `<field count> <cells as a JSON array>`, the cells of
    `columns` (a row's cells past the header are not kept). They are encoded once, here, and
    copied into the Kafka record as they are at publish time (events.RawRows).

    Customer ids are encrypted here, before they touch the disk (sales_common.pii): taken
    out of the rows' cells (and `columns`), the ids of each write are sealed together on a
    line of their own before its rows, `*<row count> <token>`."""

    def __init__(
        self, settings: SpoolSettings, budget: SpoolBudget, cipher: FieldCipher, upload_id: str
    ) -> None:
        self._budget = budget
        self._cipher = cipher
        self._upload_id = upload_id
        self._rows = 0
        self.has_ids = False  # the file has a customer_id column
        self.columns: list[str] = []  # the header's, without customer_id
        # Closed in __exit__: the spool lives as long as its upload's request.
        self._file = tempfile.TemporaryFile(  # noqa: SIM115
            dir=settings.directory, buffering=_BUFFER_BYTES
        )
        self.bytes = 0

    def write(self, columns: list[str], rows: list[list[str]]) -> None:
        if not rows:
            return
        counts = [len(cells) for cells in rows]
        lines = []
        self.has_ids = "customer_id" in columns
        if self.has_ids:
            lines.append(self._seal_ids(columns.index("customer_id"), rows))
            columns = [column for column in columns if column != "customer_id"]
        self.columns = columns
        width = len(columns)
        lines += [
            b"%d %s\n" % (count, orjson.dumps(cells if len(cells) <= width else cells[:width]))
            for count, cells in zip(counts, rows, strict=True)
        ]
        self._rows += len(rows)
        data = b"".join(lines)
        self._budget.take(len(data))
        self.bytes += len(data)
        self._file.write(data)

    def _seal_ids(self, column: int, rows: list[list[str]]) -> bytes:
        """The line of these rows' ids, each taken out of its row's cells."""
        ids = [cells.pop(column) if column < len(cells) else None for cells in rows]
        token = self._cipher.seal_ids(ids, self._upload_id, self._rows + 1)
        return b"*%d %s\n" % (len(rows), token.encode())

    def rows(self) -> Iterator[SpooledRow]:
        """(field count, cells JSON, customer id) of each row, in the order they were
        written."""
        self._file.flush()
        self._file.seek(0)
        ids: Iterator[str | None] = itertools.repeat(None)
        number = 0
        for line in self._file:
            head, _, rest = line.rstrip(b"\n").partition(b" ")
            if head.startswith(b"*"):
                count = int(head[1:])
                ids = iter(self._cipher.open_ids(rest.decode(), self._upload_id, number + 1, count))
                continue
            number += 1
            yield int(head), rest, next(ids)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._file.close()
        self._budget.give(self.bytes)
