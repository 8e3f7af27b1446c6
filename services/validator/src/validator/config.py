from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field
from sales_common.pii import EncryptionSettings, PiiSettings
from sales_common.services import SERVICES
from sales_common.settings import ServiceSettings


class RuleSettings(BaseModel):
    """The business rules; every limit is configurable."""

    product_prefix: str = "Halal"
    price_min_exclusive: Decimal = Decimal(0)
    # The largest price the sales table holds (numeric(12,2)); a larger one would stop the
    # loader (and past 27 digits the validator) on every retry: a poison pill, not a sale.
    price_max: Decimal = Decimal("9999999999.99")
    price_max_decimals: int = 2
    # A sale's quantity is at least 1 by contract, and the hot path does not check its own
    # output against the contract row by row: a lower minimum is refused at start-up.
    quantity_min: int = Field(default=1, ge=1)
    quantity_max: int = 100


_SERVICE = SERVICES["validator"]


class ValidatorSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": _SERVICE.env_prefix}

    service_name: str = _SERVICE.name
    port: int = _SERVICE.port
    group_id: str = "validator"
    # Transactional ids are "<prefix>-<lane>-<random per process>" (see consumer.py).
    transactional_id_prefix: str = "validator"
    # How long a dead validator's open transaction can hold back read_committed readers
    # (Kafka Streams' exactly-once default); a batch commits in well under a second.
    transaction_timeout_ms: int = 10_000
    # Records a transaction consumes: with ingest's packs of up to 128 rows, about 5,000 rows.
    max_batch_records: int = 40
    rules: RuleSettings = Field(default_factory=RuleSettings)
    pii: PiiSettings
    # Decrypts the customer ids ingest encrypted in sales.raw (every configured key).
    pii_encryption: EncryptionSettings
