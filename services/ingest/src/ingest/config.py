from __future__ import annotations

from pydantic import BaseModel, Field
from sales_common.services import SERVICES
from sales_common.settings import AuthSettings, ServiceSettings


class UploadLimits(BaseModel):
    max_bytes: int = 1 << 30
    max_record_chars: int = 1 << 16
    max_field_chars: int = 4096


_SERVICE = SERVICES["ingest"]


class IngestSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": _SERVICE.env_prefix}

    service_name: str = _SERVICE.name
    port: int = _SERVICE.port
    auth: AuthSettings
    uploads: UploadLimits = Field(default_factory=UploadLimits)
    # One Kafka transaction spans one upload; the broker caps it (transaction.max.timeout.ms).
    transaction_timeout_ms: int = 600_000
