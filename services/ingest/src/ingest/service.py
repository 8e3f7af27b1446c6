"""The upload use case: receive a CSV body into a local spool, then publish it to sales.raw
exactly once, or refuse it whole.

receiving   the body is read, checked (header, encoding, limits, digest) and spooled;
            no Kafka transaction is open, so the client's pace holds back nobody
committing  the spool is published in one transaction, at the server's own pace
processing  committed; the validator and loader are at work ('complete' when all counted)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from uuid import UUID, uuid4

from confluent_kafka import KafkaException
from sales_common.auth import Principal
from sales_common.db import is_transient_db_error
from sales_common.errors import ApiError, NotFound, ServiceUnavailable, UnprocessableContent
from sales_common.events import RawRecords
from sales_common.kafka import with_backoff
from sales_common.logging import get_logger
from sales_common.pii import FieldCipher
from sales_common.slices import TimeSlices
from sales_common.uploads import UploadStatus

from ingest.body import PayloadTooLarge, TransferFailed
from ingest.config import IngestSettings
from ingest.csv_stream import CheckedRows, CsvProblem
from ingest.leases import LeaseKeeper
from ingest.metrics import IngestMetrics
from ingest.packing import raw_records
from ingest.publisher import NotOwned, RawPublisher, ReadyProducer
from ingest.repository import ContentAlreadyUploaded, UploadsRepository
from ingest.spool import Spool, SpoolBudget, SpoolFull

log = get_logger(__name__)

_DONE = ("processing", "complete")
_THREAD_CHUNK_BYTES = 16 * 1024


def _spool_chunk(rows: CheckedRows, spool: Spool, chunk: bytes) -> None:
    checked = rows.feed(chunk)
    if checked:
        assert rows.columns is not None  # data rows come after the header
        spool.write(rows.columns, checked)


class IdempotencyConflict(ApiError):
    status_code = 409
    error = "conflict"


class UploadSuperseded(ApiError):
    status_code = 409
    error = "superseded"

    def __init__(self, upload_id: UUID) -> None:
        super().__init__(
            f"upload {upload_id} was taken over by a retry with the same Idempotency-Key,"
            " or failed as abandoned, while this request was still sending"
        )


@dataclass(frozen=True)
class UploadOutcome:
    upload_id: UUID
    status: str
    rows: int
    duplicate: bool = False
    replayed: bool = False

    @property
    def http_status(self) -> int:
        return 200 if self.duplicate or self.replayed else 202


@dataclass(frozen=True)
class _Received:
    """A fully received, checked upload waiting in its spool."""

    spool: Spool
    columns: list[str]
    rows: int
    content_sha256: str
    received_at: str


class UploadService:
    def __init__(
        self,
        settings: IngestSettings,
        repository: UploadsRepository,
        publisher: RawPublisher,
        leases: LeaseKeeper,
        metrics: IngestMetrics,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._publisher = publisher
        self._leases = leases
        self._metrics = metrics
        self._spool_budget = SpoolBudget(settings.spool.max_bytes)
        self._cipher = FieldCipher(settings.pii_encryption)
        # Publishing is CPU-bound in this one event loop: big uploads publish one at a time
        # (concurrently they only slow each other and every request), in slices between which
        # small ones and requests get their turn; small ones never wait for the lane.
        self._main_lane = asyncio.Semaphore(1)
        # One thread: parsing holds the GIL, so more threads would add no speed, only more
        # contenders against the event loop for it.
        self._parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")

    def close(self) -> None:
        self._parser.shutdown(wait=True, cancel_futures=True)

    async def upload(
        self,
        body: AsyncIterator[bytes],
        filename: str,
        principal: Principal,
        idempotency_key: str | None,
        reload: bool,
    ) -> UploadOutcome:
        scoped_key = f"{principal.subject}:{idempotency_key}" if idempotency_key else None
        upload_id, attempt, replay, ready = await self._claim(scoped_key, filename, reload)
        if replay is not None:
            self._metrics.uploads.labels("replayed").inc()
            return replay
        started = time.monotonic()
        try:
            with self._leases.hold(upload_id), self._holding(ready):
                outcome = await self._receive_and_publish(body, upload_id, attempt, filename, ready)
        except (CsvProblem, PayloadTooLarge, SpoolFull) as exc:
            await self._repo.discard(upload_id, attempt)
            self._metrics.uploads.labels("refused").inc()
            log.info("upload_refused", upload_id=str(upload_id), reason=str(exc))
            if isinstance(exc, CsvProblem):
                raise UnprocessableContent(str(exc)) from exc
            raise
        except UploadSuperseded:
            self._metrics.uploads.labels("superseded").inc()
            log.warning("upload_superseded", upload_id=str(upload_id), attempt=attempt)
            raise
        except TransferFailed as exc:  # one line, no traceback: clients do go away
            await self._repo.mark_failed(upload_id, attempt, str(exc.detail))
            self._metrics.uploads.labels("failed").inc()
            log.warning("upload_transfer_failed", upload_id=str(upload_id), reason=exc.detail)
            raise
        except KafkaException as exc:
            await self._repo.mark_failed(upload_id, attempt, f"broker unavailable: {exc!r}")
            self._metrics.uploads.labels("failed").inc()
            log.warning("upload_failed", upload_id=str(upload_id), error=repr(exc))
            raise ServiceUnavailable(
                "the message broker is unavailable; retry with the same Idempotency-Key"
            ) from exc
        except BaseException as exc:  # cancelled, bug: never 'complete'
            await self._repo.mark_failed(upload_id, attempt, f"interrupted: {exc!r}"[:500])
            self._metrics.uploads.labels("failed").inc()
            raise
        # Committed to Kafka: from here on nothing may mark the upload failed. Should this
        # write not get through, the upload stays 'committing' and the janitor, reading the
        # commit probe, moves it on to 'processing'.
        if not outcome.duplicate:
            await with_backoff(
                lambda: self._repo.mark_processing(upload_id, attempt),
                "mark processing",
                transient=is_transient_db_error,
                attempts=5,
            )
        self._metrics.upload_seconds.observe(time.monotonic() - started)
        return outcome

    async def status(self, upload_id: UUID) -> UploadStatus:
        status = await self._repo.status(upload_id)
        if status is None:
            raise NotFound(f"upload {upload_id} not found")
        return status

    @contextlib.contextmanager
    def _holding(self, ready: ReadyProducer | None) -> Iterator[None]:
        """A new upload's ready producer: published with, or closed when the block ends."""
        try:
            yield
        finally:
            self._publisher.ready.release(ready)

    async def _claim(
        self, scoped_key: str | None, filename: str, reload: bool
    ) -> tuple[UUID, int, UploadOutcome | None, ReadyProducer | None]:
        """Decide which upload this request is: new, a retry to take over, or a replay.
        A new upload takes a ready producer, if there is one, and that producer's upload id."""
        if scoped_key is not None:
            existing = await self._repo.find_by_idempotency_key(scoped_key)
            if existing is not None:
                if existing["status"] in _DONE:
                    return (
                        existing["upload_id"],
                        existing["attempt"],
                        UploadOutcome(
                            existing["upload_id"],
                            existing["status"],
                            existing["rows_total"],
                            replayed=True,
                        ),
                        None,
                    )
                attempt = await self._repo.start_new_attempt(existing["upload_id"], filename)
                if attempt is None:  # an earlier attempt committed meanwhile: a replay
                    return await self._claim(scoped_key, filename, reload)
                # An earlier attempt may be publishing: fence it. One that has not started its
                # producer yet finds the new attempt when it records its commit probe.
                if existing["status"] != "failed":
                    try:
                        await self._publisher.fence(existing["upload_id"])
                    except (KafkaException, TimeoutError) as exc:
                        raise ServiceUnavailable(
                            "the message broker is unavailable; retry with the same Idempotency-Key"
                        ) from exc
                return existing["upload_id"], attempt, None, None
        ready = self._publisher.ready.take()
        upload_id = ready.upload_id if ready is not None else uuid4()
        try:
            created = await self._repo.create(upload_id, filename, scoped_key, reload)
        except BaseException:
            self._publisher.ready.release(ready)
            raise
        if not created:
            self._publisher.ready.release(ready)
            raise IdempotencyConflict("an upload with this Idempotency-Key is in progress")
        return upload_id, 1, None, ready

    async def _receive_and_publish(
        self,
        body: AsyncIterator[bytes],
        upload_id: UUID,
        attempt: int,
        filename: str,
        ready: ReadyProducer | None,
    ) -> UploadOutcome:
        with Spool(self._settings.spool, self._spool_budget, self._cipher, str(upload_id)) as spool:
            received = await self._receive(body, spool)
            try:
                owned = await self._repo.mark_committing(
                    upload_id, attempt, received.content_sha256, received.rows
                )
            except ContentAlreadyUploaded:
                await self._repo.discard(upload_id, attempt)
                return await self._duplicate_of(received.content_sha256)
            if not owned:
                raise UploadSuperseded(upload_id)
            small = received.rows <= self._settings.uploads.small_rows
            topics = self._settings.kafka.topics
            async with contextlib.nullcontext() if small else self._main_lane:
                try:
                    await self._publisher.publish(
                        upload_id,
                        topics.raw_priority if small else topics.raw,
                        self._raw_records(received, str(upload_id), filename),
                        self._publisher.timeout_s(spool.bytes),
                        partial(self._repo.record_commit_probe, upload_id, attempt),
                        ready,
                        bulk=None if small else TimeSlices(),
                    )
                except NotOwned:
                    raise UploadSuperseded(upload_id) from None
        self._metrics.uploads.labels("accepted").inc()
        self._metrics.rows.inc(received.rows)
        log.info(
            "upload_accepted",
            upload_id=str(upload_id),
            rows=received.rows,
            attempt=attempt,
            lane="priority" if small else "main",
        )
        return UploadOutcome(upload_id, "processing", received.rows)

    async def _receive(self, body: AsyncIterator[bytes], spool: Spool) -> _Received:
        limits = self._settings.uploads
        rows = CheckedRows(limits.max_record_chars, limits.max_field_chars)
        received_at = datetime.now(UTC).isoformat()
        loop = asyncio.get_running_loop()
        async for chunk in body:
            self._metrics.bytes.inc(len(chunk))
            if len(chunk) >= _THREAD_CHUNK_BYTES:
                # Parsing is CPU work: in the parse thread the event loop still gets the GIL
                # every switch interval, so small uploads are not queued behind big bodies.
                await loop.run_in_executor(self._parser, _spool_chunk, rows, spool, chunk)
            else:
                _spool_chunk(rows, spool, chunk)
        last = rows.close()
        assert rows.columns is not None  # close() refuses a file without a header
        spool.write(rows.columns, last)
        return _Received(spool, rows.columns, rows.rows, rows.content_sha256(), received_at)

    async def _duplicate_of(self, content_sha256: str) -> UploadOutcome:
        first = await self._repo.find_live_by_content(content_sha256)
        if first is None:  # the first upload failed meanwhile: nothing to point at
            raise ServiceUnavailable(
                "a concurrent upload of the same content just failed; retry", 1
            )
        self._metrics.uploads.labels("duplicate").inc()
        log.info("upload_duplicate", upload_id=str(first["upload_id"]))
        return UploadOutcome(
            first["upload_id"], first["status"], first["rows_total"], duplicate=True
        )

    def _raw_records(
        self, received: _Received, upload_id: str, filename: str
    ) -> Iterator[tuple[bytes, bytes]]:
        spool = received.spool
        encoder = RawRecords(
            upload_id, spool.columns, len(received.columns), filename, received.received_at
        )
        cipher = self._cipher if spool.has_ids else None
        limits = self._settings.uploads
        return raw_records(spool.rows(), encoder, upload_id, cipher, limits)
