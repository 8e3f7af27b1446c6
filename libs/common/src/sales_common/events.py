"""The topic contracts, JSON encoded, versioned: one Kafka record per sale on the public
topics; on the internal sales.raw, one row or several rows of one upload per record.

`sales.validated` is consumed by other teams: change it only by adding optional fields,
or by bumping `SCHEMA_VERSION` and announcing it. `docs/schemas/` holds the JSON Schemas
generated from these models (`devstack schemas`), checked in CI to be current.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

SCHEMA_VERSION: Literal[1] = 1
CONTENT_TYPE = "application/json"
# Header names carried by every record, so consumers can route without parsing the body.
HEADER_CONTENT_TYPE = "content-type"
HEADER_SCHEMA_VERSION = "schema-version"
# On a public-topic record whose twin is in the express lane (docs/EXACTLY_ONCE.md): the
# loader stores the twin and skips this copy. Other readers may ignore it.
EXPRESS_COPY = ("lane", b"express")

REQUIRED_COLUMNS = ("product", "price", "quantity")
OPTIONAL_COLUMNS = ("customer_id", "date", "transaction_id")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

HexDigest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class RawSale(Contract):
    """`sales.raw`: a CSV row exactly as uploaded. The only topic that holds raw customer ids."""

    upload_id: str
    row_number: int = Field(ge=1, description="Data row number, 1 is the row after the header.")
    fields: dict[str, str] = Field(description="Column name to raw string value.")
    field_count: int = Field(description="Number of fields the row actually had.")
    column_count: int = Field(description="Number of columns in the header.")
    source_filename: str
    received_at: datetime


class RawPack(Contract):
    """Consecutive rows of one upload, as ingest writes them: a Kafka record per row cost the
    broker and both clients more than the rows' own work, and an encryption per row more
    than the rows' validation (docs/BENCHMARKS.md). The rows' customer ids are not in their
    `fields`: they are sealed together in `customer_ids`."""

    customer_ids: str | None = Field(
        default=None,
        description="The rows' customer ids (a JSON array, null for a row without one), "
        "encrypted: `pii:v1:<key id>:<base64url(nonce + AES-256-GCM ciphertext)>`, bound to "
        "the upload id, the first row number and the row count. Null when the file has no "
        "customer_id column.",
    )
    rows: list[RawSale] = Field(min_length=1)


class RawRecord(RootModel[RawPack | RawSale | Annotated[list[RawSale], Field(min_length=1)]]):
    """A `sales.raw` record: a pack of rows (`INGEST_UPLOADS__ROWS_PER_RECORD` at most).
    A single row or a plain array of rows, each customer id sealed in its own field, are
    what ingest wrote before packs; the validator still reads them."""

    model_config = ConfigDict(frozen=True)

    def rows(self) -> list[RawSale]:
        root = self.root
        if isinstance(root, RawPack):
            return root.rows
        return root if isinstance(root, list) else [root]


def raw_sales(payload: bytes) -> list[RawSale]:
    """The rows of a `sales.raw` record, checked against the contract; a pack's rows come
    without their customer ids (sealed in the pack's `customer_ids`)."""
    return RawRecord.model_validate_json(payload).rows()


class RawRecords:
    """Encodes one upload's `RawPack` records without a model or a dict per row (ingest's
    hot path): the upload's constant parts are encoded once, and each row's `fields` object
    arrives already JSON-encoded (ingest spools it that way).

    tests/ingest/test_encode_raw.py checks the bytes against the model and against
    `orjson.dumps` of the whole record.
    """

    def __init__(self, upload_id: str, column_count: int, filename: str, received_at: str) -> None:
        self._head = b'{"schema_version":%d,"upload_id":%s,"row_number":' % (
            SCHEMA_VERSION,
            orjson.dumps(upload_id),
        )
        self._tail = b',"column_count":%d,"source_filename":%s,"received_at":%s}' % (
            column_count,
            orjson.dumps(filename),
            orjson.dumps(received_at),
        )

    @staticmethod
    def pack(rows: list[bytes], customer_ids: str | None) -> bytes:
        """One record of consecutive encoded rows and the token of their customer ids."""
        return b'{"schema_version":%d,"customer_ids":%s,"rows":[%s]}' % (
            SCHEMA_VERSION,
            b"null" if customer_ids is None else orjson.dumps(customer_ids),
            b",".join(rows),
        )

    def encode(self, row_number: int, fields_json: bytes, field_count: int) -> bytes:
        return b'%s%d,"fields":%s,"field_count":%d%s' % (
            self._head,
            row_number,
            fields_json,
            field_count,
            self._tail,
        )


class ValidatedSale(Contract):
    """`sales.validated`: a row that passed every rule. Key = `event_id`."""

    event_id: str = Field(description="Deterministic id; replaying any stage yields the same.")
    upload_id: str
    row_number: int = Field(ge=1)
    transaction_id: str | None = None
    product: str
    price: Decimal = Field(description="Exact decimal, serialised as a string.")
    quantity: int = Field(ge=1)
    amount: Decimal = Field(description="price * quantity, exact.")
    customer_hash: HexDigest | None = Field(
        default=None, description="HMAC-SHA256 of the customer id under key `pii_key_id`."
    )
    pii_key_id: str | None = None
    sale_date: date | None = None
    validated_at: datetime


class Violation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    rule: str
    message: str


# Every kind of RejectedSale is built in sales_common.rejections, and only there.
class RejectedSale(Contract):
    """`sales.rejected`: a row (or an unreadable record) with every rule it broke."""

    event_id: str
    upload_id: str | None = Field(description="None only for records that could not be parsed.")
    row_number: int | None = None
    fields: dict[str, str] = Field(
        description="The row's fields, customer_id replaced by its hash."
    )
    violations: list[Violation] = Field(min_length=1)
    pii_key_id: str | None = None
    source: str | None = Field(
        default=None, description="topic/partition/offset of an unreadable record."
    )
    rejected_at: datetime


ContractT = TypeVar("ContractT", bound=Contract)


def encode(record: Contract) -> bytes:
    # JSON mode renders Decimal as a string, so prices stay exact on the wire.
    return record.__pydantic_serializer__.to_json(record)


def decode(model: type[ContractT], payload: bytes) -> ContractT:
    return model.model_validate_json(payload)


def record_headers(express_copy: bool = False) -> list[tuple[str, bytes]]:
    headers = [
        (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
        (HEADER_SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
    ]
    return [*headers, EXPRESS_COPY] if express_copy else headers


def event_id_for(upload_id: str, row_number: int, transaction_id: str | None) -> str:
    """The id that makes every stage idempotent.

    A business `transaction_id` identifies the sale across uploads. Otherwise the row is
    identified by its upload, which is bound to the file's content hash (one upload per
    content hash, see ingest), and its position in the file.
    """
    if transaction_id:
        digest = _TXN_ID.copy()
        digest.update(transaction_id.encode())
    else:
        digest = _ROW_ID.copy()
        digest.update(f"{upload_id}:{row_number}".encode())
    return digest.hexdigest()[:32]


# sha256("txn:<transaction_id>") and sha256("row:<upload_id>:<row_number>"): each prefix
# hashed once and the state copied per row, cheaper than a new hashlib object (~0.07 us a row,
# of ~0.65).
_TXN_ID = hashlib.sha256(b"txn:")
_ROW_ID = hashlib.sha256(b"row:")


def event_id_for_source(source: str) -> str:
    """The id of a record that could not be read, so has no upload or row of its own.

    What identifies it is its place in Kafka, `source` = `<topic>/<partition>/<offset>`:
    re-reading that offset (a redone batch) gives the same id, so the copy is skipped like any
    other replay. The `src:` prefix keeps these ids apart from the `txn:` and `row:` forms.
    """
    return hashlib.sha256(f"src:{source}".encode()).hexdigest()[:32]


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    "sales.raw": RawRecord,
    "sales.validated": ValidatedSale,
    "sales.rejected": RejectedSale,
}
