"""What the dashboard's lifespan opens and hands to its handlers (see deps.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sales_common.auth import AuthState, TokenIssuer

from dashboard.config import DashboardSettings
from dashboard.repository import DashboardRepository
from dashboard.service import SummaryCache
from dashboard.throttle import LoginThrottle


@dataclass(frozen=True, kw_only=True)
class DashboardState(AuthState):
    settings: DashboardSettings
    repository: DashboardRepository
    token_issuer: TokenIssuer
    login_throttle: LoginThrottle
    summary_cache: SummaryCache
