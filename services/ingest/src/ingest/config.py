from __future__ import annotations

from pydantic import BaseModel, Field
from sales_common.pii import EncryptionSettings
from sales_common.services import SERVICES
from sales_common.settings import AuthSettings, ServiceSettings


class UploadLimits(BaseModel):
    max_bytes: int = 1 << 30
    max_record_chars: int = 1 << 16
    max_field_chars: int = 4096
    # A body that sends no byte for this long is answered 408 and the upload fails.
    idle_timeout_s: float = 30.0
    # Uploads of at most this many rows take the express lane (sales.*.priority), so they
    # never queue behind big ones.
    small_rows: int = 1000
    # Rows packed into one sales.raw record (chosen by measurement, docs/BENCHMARKS.md),
    # within a size well under the broker's default message.max.bytes (1 MiB).
    rows_per_record: int = Field(default=128, ge=1)
    record_bytes: int = Field(default=256 * 1024, ge=1024)


class SpoolSettings(BaseModel):
    """Uploads are received into local files before anything is published, so a slow or
    stalled client never holds a Kafka transaction open."""

    directory: str | None = None  # None: the system temp dir (an emptyDir in containers)
    # Disk for every upload being received at once; past it new uploads get 503.
    max_bytes: int = 8 << 30


class TransactionSettings(BaseModel):
    """A transaction on sales.raw lasts as long as publishing a spooled upload takes; its
    timeout is sized to that, so a dead instance holds the topic only briefly."""

    min_timeout_s: float = 10.0
    # The slowest publishing we accept; slower, the broker aborts and the upload fails.
    min_publish_bytes_per_s: int = 2_000_000
    max_timeout_s: float = 900.0  # the broker's transaction.max.timeout.ms default
    # Producers started ahead of new uploads (0: none): starting one (connect,
    # FindCoordinator, InitProducerId) was most of a small upload's request.
    ready_producers: int = Field(default=3, ge=0)
    # A ready producer serves an upload whose spool is at most this big: its transaction
    # timeout is sized for that many bytes.
    ready_max_bytes: int = Field(default=1 << 20, ge=0)
    # Replaced when older: brokers close a connection idle for 10 minutes.
    ready_max_age_s: float = Field(default=300.0, gt=0)


class LeaseSettings(BaseModel):
    """An instance renews the lease of every upload it works on; an upload whose lease ran
    out belongs to a dead instance, and any instance's janitor fails it."""

    ttl_s: float = 20.0
    renew_every_s: float = 5.0
    janitor_every_s: float = 5.0


_SERVICE = SERVICES["ingest"]


class IngestSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": _SERVICE.env_prefix}

    service_name: str = _SERVICE.name
    port: int = _SERVICE.port
    auth: AuthSettings
    # Customer ids are encrypted before they are spooled or published (sales_common.pii).
    pii_encryption: EncryptionSettings
    uploads: UploadLimits = Field(default_factory=UploadLimits)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    transactions: TransactionSettings = Field(default_factory=TransactionSettings)
    leases: LeaseSettings = Field(default_factory=LeaseSettings)
