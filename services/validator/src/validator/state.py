"""What the validator's lifespan opens; only observability reads it (no HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass

from sales_common.state import ServiceState

from validator.config import ValidatorSettings


@dataclass(frozen=True, kw_only=True)
class ValidatorState(ServiceState):
    settings: ValidatorSettings
