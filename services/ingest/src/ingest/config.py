from __future__ import annotations

from pydantic import BaseModel, Field
from sales_common.settings import AuthSettings, ServiceSettings


class UploadLimits(BaseModel):
    max_bytes: int = 1 << 30
    max_record_chars: int = 1 << 16
    max_field_chars: int = 4096


class IngestSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "INGEST_"}

    service_name: str = "ingest"
    port: int = 8001
    auth: AuthSettings
    uploads: UploadLimits = Field(default_factory=UploadLimits)
    # One Kafka transaction spans one upload; the broker caps it (transaction.max.timeout.ms).
    transaction_timeout_ms: int = 600_000
