"""Local spool files: an upload is received whole before anything of it is published.

The client's pace then never holds a Kafka transaction open: the transaction lasts as long
as publishing from local disk takes. Memory stays flat (rows go to disk as they are read),
and a disk budget shared by every upload bounds the spool.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from types import TracebackType

import orjson
from sales_common.errors import ServiceUnavailable

from ingest.config import SpoolSettings

_BUFFER_BYTES = 1 << 20


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
    """One upload's checked rows, one JSON array of cells per line, in an unnamed temp
    file: nothing is left on disk when the process dies."""

    def __init__(self, settings: SpoolSettings, budget: SpoolBudget) -> None:
        self._budget = budget
        # Closed in __exit__: the spool lives as long as its upload's request.
        self._file = tempfile.TemporaryFile(  # noqa: SIM115
            dir=settings.directory, buffering=_BUFFER_BYTES
        )
        self.bytes = 0

    def write(self, rows: list[list[str]]) -> None:
        if not rows:
            return
        data = b"\n".join(map(orjson.dumps, rows)) + b"\n"
        self._budget.take(len(data))
        self.bytes += len(data)
        self._file.write(data)

    def rows(self) -> Iterator[list[str]]:
        """The rows in the order they were written."""
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            cells: list[str] = orjson.loads(line)
            yield cells

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
