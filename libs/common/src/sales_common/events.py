"""The topic contracts, JSON encoded, versioned: one Kafka record per sale on the public
topics; on the internal sales.raw, consecutive rows of one upload per record (`RawRows`).

`sales.validated` is consumed by other teams: change it only by adding optional fields,
or by bumping `SCHEMA_VERSION` and announcing it. `docs/schemas/` holds the JSON Schemas
generated from these models (`devstack schemas`), checked in CI to be current.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, Self, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1
# sales.raw's record since it carries each row as its cells (`RawRows`); the topic is internal,
# so its version moves alone.
RAW_SCHEMA_VERSION: Literal[2] = 2
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
    """Every topic record: no field beyond the contract's, never changed once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ContractV1(Contract):
    schema_version: Literal[1] = SCHEMA_VERSION


class RawSale(ContractV1):
    """A CSV row exactly as uploaded, as `sales.raw` carried it before `RawRows`: a record of
    its own before packs, then a row of a `RawPack`."""

    upload_id: str
    row_number: int = Field(ge=1, description="Data row number, 1 is the row after the header.")
    fields: dict[str, str] = Field(description="Column name to raw string value.")
    field_count: int = Field(description="Number of fields the row actually had.")
    column_count: int = Field(description="Number of columns in the header.")
    source_filename: str
    received_at: datetime


# A record's customer ids, sealed together (RawPack and RawRows alike).
_SEALED_IDS = (
    "The rows' customer ids (a JSON array, null for a row without one), encrypted: "
    "`pii:v1:<key id>:<base64url(nonce + AES-256-GCM ciphertext)>`, bound to the upload id, "
    "the first row number and the row count. Null when the file has no customer_id column."
)


class RawPack(ContractV1):
    """Consecutive rows of one upload, as ingest wrote them before `RawRows`: a Kafka record
    per row cost the broker and both clients more than the rows' own work, and an encryption
    per row more than the rows' validation (docs/BENCHMARKS.md). The rows' customer ids are
    not in their `fields`: they are sealed together in `customer_ids`."""

    customer_ids: str | None = Field(default=None, description=_SEALED_IDS)
    rows: list[RawSale] = Field(min_length=1)


class RawRows(Contract):
    """Consecutive rows of one upload, as ingest writes them: what the rows share (the
    upload, the file, the columns) once, and each row as its cells. A row as a JSON object
    repeating all that took ~340 bytes on the generated data (its id sealed), its cells ~80,
    and encoding the object was most of ingest's work per row (docs/BENCHMARKS.md). The
    rows' customer ids are not among their cells: they are sealed together in
    `customer_ids`."""

    schema_version: Literal[2] = RAW_SCHEMA_VERSION
    upload_id: str
    first_row: int = Field(
        ge=1, description="Data row number of the first row, 1 is the row after the header."
    )
    columns: list[str] = Field(
        description="The header's column names in header order, without customer_id (never "
        "in clear here), each once."
    )
    column_count: int = Field(description="Number of columns in the header.")
    source_filename: str
    received_at: datetime
    customer_ids: str | None = Field(default=None, description=_SEALED_IDS)
    field_counts: list[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]] = Field(
        default=[],
        description="`[index in rows, number of fields the row actually had]` for each row "
        "whose count is not `column_count`, in row order; empty when every row had as many "
        "fields as the header.",
    )
    rows: list[list[str]] = Field(
        min_length=1,
        description="Row `first_row + index`: its raw string values, in `columns` order, at "
        "most one a column (a short row has fewer; values past the header are not kept). "
        "Its fields are `columns` zipped with them.",
    )

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        if problem := rows_problem(self.columns, self.field_counts, self.rows):
            raise ValueError(problem)
        return self

    def sales(self) -> list[RawSale]:
        """Each row as a `RawSale` (without its customer id, sealed in `customer_ids`)."""
        counts = dict(self.field_counts)
        return [
            RawSale(
                upload_id=self.upload_id,
                row_number=self.first_row + index,
                fields=dict(zip(self.columns, cells, strict=False)),
                field_count=counts.get(index, self.column_count),
                column_count=self.column_count,
                source_filename=self.source_filename,
                received_at=self.received_at,
            )
            for index, cells in enumerate(self.rows)
        ]


def rows_problem(
    columns: list[str], field_counts: Sequence[tuple[int, int]], rows: list[list[str]]
) -> str | None:
    """What the contract refuses in a `RawRows` beyond its fields' types, None if nothing:
    shared by the model and the hot path's decoder (sales_common.codec)."""
    if "customer_id" in columns:
        return "columns must not hold customer_id: the ids are sealed in customer_ids"
    if len(set(columns)) != len(columns):
        return "columns must be distinct"
    if max(map(len, rows)) > len(columns):  # rows is not empty: checked first (min_length)
        return "a row has more values than columns"
    last = -1
    for index, _ in field_counts:
        if not last < index < len(rows):
            return "field_counts must name rows of the record, in order, each once"
        last = index
    return None


class RawRecord(
    RootModel[RawRows | RawPack | RawSale | Annotated[list[RawSale], Field(min_length=1)]]
):
    """A `sales.raw` record: `RawRows`, up to `INGEST_UPLOADS__ROWS_PER_RECORD` rows. What
    ingest wrote before is still read by the validator: `RawPack` (the same rows, each a
    `RawSale` object), and before packs a single row or a plain array of rows, each customer
    id sealed in its own field."""

    model_config = ConfigDict(frozen=True)

    def rows(self) -> list[RawSale]:
        root = self.root
        if isinstance(root, RawRows):
            return root.sales()
        if isinstance(root, RawPack):
            return root.rows
        return root if isinstance(root, list) else [root]


def raw_sales(payload: bytes) -> list[RawSale]:
    """The rows of a `sales.raw` record, checked against the contract; a pack's rows come
    without their customer ids (sealed in the pack's `customer_ids`)."""
    return RawRecord.model_validate_json(payload).rows()


class RawRecords:
    """Encodes one upload's `RawRows` records without a model or a dict per row (ingest's hot
    path): what the rows share is encoded once, and each row's cells arrive already
    JSON-encoded (ingest spools them that way).

    tests/ingest/test_encode_raw.py checks the bytes against the model and against
    `orjson.dumps` of the whole record.
    """

    def __init__(
        self,
        upload_id: str,
        columns: Sequence[str],
        column_count: int,
        filename: str,
        received_at: str,
    ) -> None:
        self.column_count = column_count
        self._head = b'{"schema_version":%d,"upload_id":%s,"first_row":' % (
            RAW_SCHEMA_VERSION,
            orjson.dumps(upload_id),
        )
        self._shared = (
            b',"columns":%s,"column_count":%d,"source_filename":%s,"received_at":%s,'
            b'"customer_ids":'
            % (
                orjson.dumps(list(columns)),
                column_count,
                orjson.dumps(filename),
                orjson.dumps(received_at),
            )
        )

    def pack(
        self,
        first_row: int,
        rows: list[bytes],
        customer_ids: str | None,
        field_counts: list[tuple[int, int]],
    ) -> bytes:
        """One record: consecutive rows from `first_row`, each its cells as a JSON array, the
        token of their customer ids, and [index, count] of the rows whose field count is not
        the header's."""
        return b'%s%d%s%s,"field_counts":%s,"rows":[%s]}' % (
            self._head,
            first_row,
            self._shared,
            b"null" if customer_ids is None else orjson.dumps(customer_ids),
            orjson.dumps(field_counts),
            b",".join(rows),
        )


class ValidatedSale(ContractV1):
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
class RejectedSale(ContractV1):
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


def record_headers(
    express_copy: bool = False, schema_version: int = SCHEMA_VERSION
) -> list[tuple[str, bytes]]:
    headers = [
        (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
        (HEADER_SCHEMA_VERSION, str(schema_version).encode()),
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
