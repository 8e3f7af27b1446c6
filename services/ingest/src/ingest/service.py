"""The upload use case: stream a CSV body into sales.raw exactly once, or refuse it whole."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
from aiokafka.errors import KafkaError
from sales_common.auth import Principal
from sales_common.errors import ApiError, ServiceUnavailable, UnprocessableContent
from sales_common.events import SCHEMA_VERSION
from sales_common.logging import get_logger

from ingest.config import IngestSettings
from ingest.csv_stream import CsvProblem, CsvRecordStream, check_header
from ingest.metrics import IngestMetrics
from ingest.publisher import RawPublisher, RawTransaction
from ingest.repository import ContentAlreadyUploaded, UploadsRepository

log = get_logger(__name__)

_DONE = ("processing", "complete")


class PayloadTooLarge(ApiError):
    status_code = 413
    error = "payload_too_large"


class IdempotencyConflict(ApiError):
    status_code = 409
    error = "conflict"


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


def encode_raw(
    upload_id: str,
    row_number: int,
    fields: dict[str, str],
    field_count: int,
    column_count: int,
    filename: str,
    received_at: str,
) -> bytes:
    """A `RawSale` record, built without a model instance per row (hot path).

    tests/ingest/test_service.py checks it against the `RawSale` contract.
    """
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "upload_id": upload_id,
            "row_number": row_number,
            "fields": fields,
            "field_count": field_count,
            "column_count": column_count,
            "source_filename": filename,
            "received_at": received_at,
        }
    )


class UploadService:
    def __init__(
        self,
        settings: IngestSettings,
        repository: UploadsRepository,
        publisher: RawPublisher,
        metrics: IngestMetrics,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._publisher = publisher
        self._metrics = metrics

    async def upload(
        self,
        body: AsyncIterator[bytes],
        filename: str,
        principal: Principal,
        idempotency_key: str | None,
        reload: bool,
    ) -> UploadOutcome:
        scoped_key = f"{principal.subject}:{idempotency_key}" if idempotency_key else None
        upload_id, attempt, replay = await self._claim(scoped_key, filename, reload)
        if replay is not None:
            self._metrics.uploads.labels("replayed").inc()
            return replay
        started = time.monotonic()
        try:
            outcome = await self._publish(body, upload_id, attempt, filename)
        except (CsvProblem, PayloadTooLarge) as exc:
            await self._repo.discard(upload_id, attempt)
            self._metrics.uploads.labels("refused").inc()
            log.info("upload_refused", upload_id=str(upload_id), reason=str(exc))
            if isinstance(exc, PayloadTooLarge):
                raise
            raise UnprocessableContent(str(exc)) from exc
        except KafkaError as exc:
            await self._repo.mark_failed(upload_id, attempt, f"broker unavailable: {exc!r}")
            self._metrics.uploads.labels("failed").inc()
            log.warning("upload_failed", upload_id=str(upload_id), error=repr(exc))
            raise ServiceUnavailable(
                "the message broker is unavailable; retry with the same Idempotency-Key"
            ) from exc
        except BaseException as exc:  # client went away, cancelled, bug: never 'complete'
            await self._repo.mark_failed(upload_id, attempt, f"interrupted: {exc!r}"[:500])
            self._metrics.uploads.labels("failed").inc()
            raise
        self._metrics.upload_seconds.observe(time.monotonic() - started)
        return outcome

    async def _claim(
        self, scoped_key: str | None, filename: str, reload: bool
    ) -> tuple[UUID, int, UploadOutcome | None]:
        """Decide which upload this request is: new, a retry to take over, or a replay."""
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
                    )
                attempt = await self._repo.start_new_attempt(existing["upload_id"], filename)
                return existing["upload_id"], attempt, None
        upload_id = uuid4()
        if not await self._repo.create(upload_id, filename, scoped_key, reload):
            raise IdempotencyConflict("an upload with this Idempotency-Key is in progress")
        return upload_id, 1, None

    async def _publish(
        self, body: AsyncIterator[bytes], upload_id: UUID, attempt: int, filename: str
    ) -> UploadOutcome:
        async with self._publisher.transaction(upload_id) as txn:
            rows, content_sha256 = await self._stream_rows(body, txn, upload_id, filename)
            try:
                await self._repo.mark_committing(upload_id, attempt, content_sha256, rows)
            except ContentAlreadyUploaded:
                await txn.abort()
                await self._repo.discard(upload_id, attempt)
                first = await self._repo.find_live_by_content(content_sha256)
                if first is None:  # the first upload failed meanwhile: nothing to point at
                    raise ServiceUnavailable(
                        "a concurrent upload of the same content just failed; retry", 1
                    ) from None
                self._metrics.uploads.labels("duplicate").inc()
                log.info("upload_duplicate", upload_id=str(first["upload_id"]))
                return UploadOutcome(
                    first["upload_id"], first["status"], first["rows_total"], duplicate=True
                )
            await txn.commit()
        await self._repo.mark_processing(upload_id, attempt)
        self._metrics.uploads.labels("accepted").inc()
        self._metrics.rows.inc(rows)
        log.info("upload_accepted", upload_id=str(upload_id), rows=rows, attempt=attempt)
        return UploadOutcome(upload_id, "processing", rows)

    async def _stream_rows(
        self, body: AsyncIterator[bytes], txn: RawTransaction, upload_id: UUID, filename: str
    ) -> tuple[int, str]:
        limits = self._settings.uploads
        stream = CsvRecordStream(max_record_chars=limits.max_record_chars)
        columns: list[str] | None = None
        row_number = 0
        upload = str(upload_id)
        received_at = datetime.now(UTC).isoformat()

        async def publish(records: list[list[str]]) -> None:
            nonlocal columns, row_number
            for cells in records:
                if columns is None:
                    columns = check_header(cells)
                    continue
                row_number += 1
                fields = dict(zip(columns, cells, strict=False))
                if max(map(len, fields.values())) > limits.max_field_chars:
                    column = next(c for c, v in fields.items() if len(v) > limits.max_field_chars)
                    raise CsvProblem(
                        f"row {row_number}: field '{column}' is longer than "
                        f"{limits.max_field_chars} characters"
                    )
                record = encode_raw(
                    upload, row_number, fields, len(cells), len(columns), filename, received_at
                )
                await txn.send(f"{upload}:{row_number}".encode(), record)

        async for chunk in body:
            if stream.bytes_read + len(chunk) > limits.max_bytes:
                raise PayloadTooLarge(f"the upload exceeds the limit of {limits.max_bytes} bytes")
            self._metrics.bytes.inc(len(chunk))
            await publish(stream.feed(chunk))
        await publish(stream.close())
        if columns is None:
            raise CsvProblem("the file is empty: a header line is required")
        return row_number, stream.sha256.hexdigest()
