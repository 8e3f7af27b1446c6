"""What the loader's lifespan opens; only observability reads it (no HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass

from sales_common.state import ServiceState

from loader.config import LoaderSettings


@dataclass(frozen=True, kw_only=True)
class LoaderState(ServiceState):
    settings: LoaderSettings
