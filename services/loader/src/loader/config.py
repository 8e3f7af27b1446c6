from __future__ import annotations

from sales_common.settings import ServiceSettings


class LoaderSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "LOADER_"}

    service_name: str = "loader"
    port: int = 8003
    group_id: str = "loader"
    max_batch_records: int = 5000
    fetch_timeout_ms: int = 200
    migrate_on_start: bool = True
