"""validator against the real broker: transactions, every reason, poison records, PII."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sales_common.events import RawPack, RawSale, RejectedSale, ValidatedSale, decode, encode
from sales_common.pii import (
    CustomerHasher,
    EncryptionSettings,
    FieldCipher,
    PiiSettings,
    row_context,
)
from sales_common.settings import KafkaSettings
from validator.config import ValidatorSettings
from validator.main import create_app

from tests.helpers import consume, eventually, produce, raw_sale, serve

pytestmark = pytest.mark.integration


def raw(upload: str, row: int, **fields: str) -> RawSale:
    return raw_sale(upload, row, fields, source_filename="t.csv", received_at=datetime.now(UTC))


async def produce_raw(settings: ValidatorSettings, rows: list[RawSale]) -> None:
    """Rows onto sales.raw keyed as ingest keys them."""
    records = [(f"{r.upload_id}:{r.row_number}".encode(), encode(r)) for r in rows]
    await produce(settings.kafka, settings.kafka.topics.raw, records)


@pytest.fixture
def settings(
    kafka_settings: KafkaSettings,
    pii_settings: PiiSettings,
    encryption_settings: EncryptionSettings,
) -> ValidatorSettings:
    suffix = uuid.uuid4().hex[:8]
    return ValidatorSettings(
        kafka=kafka_settings,
        pii=pii_settings,
        pii_encryption=encryption_settings,
        group_id=f"validator-{suffix}",
        transactional_id_prefix=f"validator-{suffix}",
        log_json=False,
    )


async def test_rows_are_split_into_validated_and_rejected(settings: ValidatorSettings) -> None:
    upload = str(uuid.uuid4())
    rows = [
        raw(
            upload,
            1,
            product="Halal Laptop",
            price="999.99",
            quantity="2",
            customer_id="CUST-SECRET-1",
        ),
        raw(
            upload, 2, product="Monitor", price="invalid", quantity="2", customer_id="CUST-SECRET-2"
        ),
        raw(upload, 3, product="Halal Mouse", price="24.99", quantity="10"),
    ]
    topics = settings.kafka.topics
    await produce_raw(settings, rows)
    await produce(settings.kafka, topics.raw, [(b"poison", b"\x00not json at all")])

    async with serve(create_app(settings)) as client:
        validated = await consume(settings.kafka, topics.validated, expected=2)
        rejected = await consume(settings.kafka, topics.rejected, expected=2)
        metrics = (await client.get("/metrics")).text
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200

    sales = sorted((decode(ValidatedSale, r.value) for r in validated), key=lambda s: s.row_number)
    assert [(s.row_number, s.product, str(s.amount)) for s in sales] == [
        (1, "Halal Laptop", "1999.98"),
        (3, "Halal Mouse", "249.90"),
    ]
    hasher = CustomerHasher(settings.pii)
    assert sales[0].customer_hash == hasher.hash("CUST-SECRET-1")
    assert all(r.key == decode(ValidatedSale, r.value).event_id.encode() for r in validated)

    rejections = [decode(RejectedSale, r.value) for r in rejected]
    row_two = next(r for r in rejections if r.row_number == 2)
    assert [v.rule for v in row_two.violations] == ["prefix", "number"]
    assert row_two.fields["customer_id"] == hasher.hash("CUST-SECRET-2")
    poison = next(r for r in rejections if r.upload_id is None)
    assert poison.violations[0].rule == "unreadable"
    assert poison.source is not None
    assert poison.source.startswith(topics.raw)

    everything = b"".join(r.value for r in validated + rejected)
    assert b"CUST-SECRET" not in everything
    assert 'sales_processed_total{outcome="valid"} 2.0' in metrics
    assert 'validator_rejections_total{rule="number"} 1.0' in metrics


async def test_restart_resumes_from_committed_offsets(settings: ValidatorSettings) -> None:
    topics = settings.kafka.topics
    upload = str(uuid.uuid4())
    first = [raw(upload, i, product="Halal A", price="1.00", quantity="1") for i in range(1, 51)]
    await produce_raw(settings, first)
    async with serve(create_app(settings)):
        await consume(settings.kafka, topics.validated, expected=50)
    second = [raw(upload, i, product="Halal A", price="1.00", quantity="1") for i in range(51, 81)]
    await produce_raw(settings, second)
    async with serve(create_app(settings)):
        records = await eventually(
            lambda: consume(settings.kafka, topics.validated, expected=80, timeout_s=2),
            lambda found: len(found) >= 80,
            what="80 validated records",
        )
    rows = sorted(decode(ValidatedSale, r.value).row_number for r in records)
    assert rows == list(range(1, 81))  # each row exactly once across the restart


async def test_customer_ids_encrypted_under_a_rotated_out_key_still_validate(
    settings: ValidatorSettings,
) -> None:
    """Rows ingest encrypted before a key rotation, still in sales.raw after it, are read
    with the previous key: a pack's sealed ids, and a row's own token (written before packs).
    Ids that decrypt under no key reject every row of their pack, never passed on."""
    upload = str(uuid.uuid4())
    old = EncryptionSettings(key=SecretStr("o" * 40), key_id="e-old")
    stranger = FieldCipher(EncryptionSettings(key=SecretStr("x" * 40), key_id="e-old"))
    settings.pii_encryption.previous_keys = {"e-old": old.key}
    fields = {"product": "Halal Tea", "price": "2.50", "quantity": "4"}
    ids = ["CUST-ROTATED-1", "CUST-ROTATED-2"]
    sealed = FieldCipher(old).seal_ids(ids, upload, 1)
    forged = stranger.seal_ids(ids, upload, 3)
    legacy = FieldCipher(old).encrypt("CUST-ROTATED-5", row_context(upload, 5))

    def pack(first: int, token: str) -> bytes:
        rows = [raw(upload, first, **fields), raw(upload, first + 1, **fields)]
        return encode(RawPack(customer_ids=token, rows=rows))

    records = [
        (f"{upload}:1".encode(), pack(1, sealed)),
        (f"{upload}:3".encode(), pack(3, forged)),
        (f"{upload}:5".encode(), encode(raw(upload, 5, **fields, customer_id=legacy))),
    ]
    await produce(settings.kafka, settings.kafka.topics.raw, records)
    topics = settings.kafka.topics
    async with serve(create_app(settings)):
        validated = await consume(settings.kafka, topics.validated, expected=3)
        rejected = await consume(settings.kafka, topics.rejected, expected=2)
    sales = sorted((decode(ValidatedSale, r.value) for r in validated), key=lambda s: s.row_number)
    hasher = CustomerHasher(settings.pii)
    assert [(s.row_number, s.customer_hash) for s in sales] == [
        (1, hasher.hash("CUST-ROTATED-1")),
        (2, hasher.hash("CUST-ROTATED-2")),
        (5, hasher.hash("CUST-ROTATED-5")),
    ]
    refused = sorted(
        (decode(RejectedSale, r.value) for r in rejected), key=lambda r: r.row_number or 0
    )
    # Rows of their upload (it completes), without the id or anything derived from it.
    assert [(r.upload_id, r.row_number) for r in refused] == [(upload, 3), (upload, 4)]
    for rejection in refused:
        (violation,) = rejection.violations
        assert (violation.field, violation.rule) == ("customer_id", "unreadable")
        assert "does not decrypt" in violation.message
        assert rejection.fields == fields
        assert rejection.pii_key_id is None
    everything = b"".join(r.value for r in validated + rejected)
    assert b"CUST-" not in everything
    assert sealed.encode() not in everything
