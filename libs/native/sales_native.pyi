"""Type stubs of the Rust extension (src/lib.rs)."""

class ValidRows:
    def __init__(
        self,
        product_prefix: str,
        price_min_exclusive: tuple[int, int],
        price_max: tuple[int, int],
        price_max_decimals: int,
        quantity_min: int,
        quantity_max: int,
        hmac_key: bytes,
        pii_key_id: str,
    ) -> None: ...
    def encode(
        self,
        rows: list[list[str]],
        places: tuple[int, int, int, int, int],
        upload_id: str,
        first_row: int,
        odd_rows: dict[int, int],
        customer_ids: list[str | None] | None,
        validated_at: str,
    ) -> list[tuple[bytes, bytes] | None]: ...

# SalesCopy.totals, as columns: per product (product, cents, quantity, count), per day and
# product (days since 2000-01-01, the product's place from 1 in the first, cents, quantity,
# count; each an integer array literal, "{1,2}"), per upload (upload id, cents, count).
SaleTotals = tuple[
    tuple[list[str], list[int], list[int], list[int]],
    tuple[str, str, str, str, str],
    tuple[list[str], list[int], list[int]],
]

class SalesCopy:
    """A batch's sales.validated records as COPY's binary rows (the loader's staged columns)."""

    def __init__(self) -> None: ...
    def append(self, value: bytes) -> str | None: ...
    def undo(self) -> None: ...
    @property
    def rows(self) -> int: ...
    def totals(self) -> SaleTotals | None: ...
    def customer_hashes(self) -> str: ...
    def payload(self) -> bytes: ...
