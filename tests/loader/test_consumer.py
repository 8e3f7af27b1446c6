"""Which records of a batch the loader stores: the main lane skips the express copies (marked
by their header) and stores everything else, without reading the headers of an upload it has
already read an unmarked record of."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import cast

from confluent_kafka import Message
from loader.config import LoaderSettings
from loader.consumer import Batch, LoaderHandler
from loader.metrics import LoaderMetrics
from loader.repository import LoaderRepository
from prometheus_client import CollectorRegistry
from sales_common.codec import encode_struct
from sales_common.events import (
    RejectedSale,
    Violation,
    encode,
    event_id_for,
    record_headers,
)
from sales_common.rejections import unreadable

from tests.helpers import copied_sales, validated_sale

NOW = datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC)
SETTINGS = LoaderSettings()
TOPICS = SETTINGS.kafka.topics


def handler(express: bool = False) -> LoaderHandler:
    repository = cast(LoaderRepository, None)  # rows() never touches the database
    return LoaderHandler(SETTINGS, repository, LoaderMetrics(CollectorRegistry()), express)


def record(topic: str, offset: int, value: bytes, copy: bool = False) -> Message:
    headers: list[tuple[str, str | bytes | None]] = [*record_headers(express_copy=copy)]
    return Message(
        topic=topic,
        partition=0,
        offset=offset,
        value=value,
        headers=headers,
    )


def sale(upload: str, row: int) -> bytes:
    return encode(validated_sale(upload, row, "Halal A", "1.00", 1))


def rejected_record(upload: str, row: int) -> bytes:
    return encode(
        RejectedSale(
            event_id=event_id_for(upload, row, None),
            upload_id=upload,
            row_number=row,
            fields={"product": "X"},
            violations=[Violation(field="product", rule="prefix", message="bad")],
            rejected_at=NOW,
        )
    )


def odd_sale(upload: str, row: int) -> bytes:
    """A sale in a form the validator does not write (a space): the Python decoder's."""
    return sale(upload, row).replace(b'"row_number":', b'"row_number": ', 1)


def sales_of(batch: Batch) -> list[tuple[object, ...]]:
    """The batch's sales, those copied by the native path first (as they are staged)."""
    return copied_sales(batch.copied.payload()) + list(batch.sales)


def stored_rows(lane: LoaderHandler, records: list[Message]) -> list[tuple[str, object]]:
    batch = asyncio.run(lane.rows(records, NOW))
    return [(str(row[1]), row[2]) for row in sales_of(batch)] + [
        (str(row[1]), row[2]) for row in batch.rejections
    ]


def test_the_main_lane_skips_express_copies_and_stores_the_rest() -> None:
    big, small = str(uuid.uuid4()), str(uuid.uuid4())
    records = [
        record(TOPICS.validated, 0, sale(big, 1)),
        record(TOPICS.validated, 1, sale(small, 1), copy=True),
        record(TOPICS.validated, 2, sale(big, 2)),
        record(TOPICS.validated, 3, sale(small, 2), copy=True),
        record(TOPICS.rejected, 0, encode_struct(unreadable("t/0/1", "bad", NOW)), copy=True),
        record(TOPICS.rejected, 1, b"not json", copy=True),
        record(TOPICS.rejected, 2, b"not json"),
    ]
    batch = asyncio.run(handler().rows(records, NOW))
    assert [(row[1], row[2]) for row in sales_of(batch)] == [(big, 1), (big, 2)]
    assert [row[6] for row in batch.rejections] == [f"{TOPICS.rejected}/0/2"]
    assert batch.offsets == {(TOPICS.validated, 0): 4, (TOPICS.rejected, 0): 3}
    # The counters it moves, locked first: not those of the skipped copies' upload.
    assert batch.uploads == {big}


def test_copies_in_either_path_are_skipped_and_the_rest_staged_in_kafkas_order() -> None:
    """A copy read by the native path is taken back from its rows; one the Python decoder
    read never joins them. From the first sale the native path leaves to Python on, the
    batch's sales are Python's: the staged rows keep Kafka's order."""
    big, small = str(uuid.uuid4()), str(uuid.uuid4())
    records = [
        record(TOPICS.validated, 0, sale(small, 1), copy=True),
        record(TOPICS.validated, 1, odd_sale(small, 2), copy=True),
        record(TOPICS.validated, 2, odd_sale(big, 1)),
        record(TOPICS.validated, 3, sale(big, 2)),
        record(TOPICS.validated, 4, odd_sale(small, 3), copy=True),
        record(TOPICS.validated, 5, sale(small, 4), copy=True),
    ]
    batch = asyncio.run(handler().rows(records, NOW))
    assert (batch.copied.rows, len(batch.sales), batch.sale_count) == (0, 2, 2)
    assert [(row[1], row[2]) for row in sales_of(batch)] == [(big, 1), (big, 2)]
    records = [record(TOPICS.validated, n, sale(big, n)) for n in (3, 4)]
    records.insert(1, record(TOPICS.validated, 9, odd_sale(big, 5)))
    batch = asyncio.run(handler().rows(records, NOW))
    assert (batch.copied.rows, len(batch.sales)) == (1, 2)
    assert [row[2] for row in sales_of(batch)] == [3, 5, 4]


def test_copies_are_told_apart_in_every_batch() -> None:
    """Remembering the uploads read unmarked never lets another upload's copies through."""
    lane = handler()
    for batch in range(3):
        big, small = str(uuid.uuid4()), str(uuid.uuid4())
        records = [
            record(TOPICS.validated, 2 * batch, sale(big, 1)),
            record(TOPICS.validated, 2 * batch + 1, sale(small, 1), copy=True),
        ]
        assert stored_rows(lane, records) == [(big, 1)]


def test_an_upload_read_unmarked_is_stored_without_looking_again() -> None:
    """A copy of an upload whose unmarked record came first is stored: the merge's idempotency
    on event_id keeps its row once. Ingest sends an upload down one lane, so this does not
    happen; the test pins that headers are read once per upload, not once per record."""
    upload = str(uuid.uuid4())
    records = [
        record(TOPICS.validated, 0, sale(upload, 1)),
        record(TOPICS.validated, 1, sale(upload, 2), copy=True),
    ]
    assert stored_rows(handler(), records) == [(upload, 1), (upload, 2)]


def test_the_express_lane_stores_every_record() -> None:
    upload = str(uuid.uuid4())
    records = [
        record(TOPICS.validated_priority, 0, sale(upload, 1)),
        record(TOPICS.validated_priority, 1, sale(upload, 2), copy=True),
    ]
    assert stored_rows(handler(express=True), records) == [(upload, 1), (upload, 2)]


def test_a_record_whose_upload_id_is_not_a_uuid_is_kept_as_unreadable() -> None:
    """Its transaction would fail at every retry (the uploads' key is a UUID): the record is
    kept as an unreadable rejection, its upload's counters never looked for."""
    good = str(uuid.uuid4())
    foreign = rejected_record(good, 2).replace(good.encode(), b"upload-7", 1)
    records = [
        record(TOPICS.validated, 0, sale(good, 1)),
        record(TOPICS.validated, 1, sale(good, 3).replace(good.encode(), b"upload-7", 1)),
        record(TOPICS.rejected, 0, foreign),
    ]
    batch = asyncio.run(handler().rows(records, NOW))
    assert [(row[1], row[2]) for row in sales_of(batch)] == [(good, 1)]
    assert [(row[1], row[6]) for row in batch.rejections] == [
        (None, f"{TOPICS.validated}/0/1"),
        (None, f"{TOPICS.rejected}/0/0"),
    ]
    assert all("upload_id is not a UUID" in row[4] for row in batch.rejections)
    assert batch.uploads == {good}
