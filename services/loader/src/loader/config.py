from __future__ import annotations

from pydantic import Field
from sales_common.services import SERVICES
from sales_common.settings import ServiceSettings

_SERVICE = SERVICES["loader"]


class LoaderSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": _SERVICE.env_prefix}

    service_name: str = _SERVICE.name
    port: int = _SERVICE.port
    group_id: str = "loader"
    # Measured: 10,000 against 5,000 in docs/BENCHMARKS.md, "The loader's batch cap".
    max_batch_records: int = 10_000
    fetch_timeout_ms: int = 200
    migrate_on_start: bool = True
    # How often the per-day totals' deltas are folded (loader/folding.py): the deltas a reader
    # of daily_product_totals adds up are about this many seconds of batches.
    fold_every_s: float = Field(default=1.0, gt=0)
