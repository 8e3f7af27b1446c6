"""The dependencies the dashboard's handlers take, each a part of the typed lifespan state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sales_common.auth import (
    SCOPE_ADMIN,
    SCOPE_SALES_READ,
    Principal,
    TokenIssuer,
    require_scope,
)

from dashboard.config import DashboardSettings
from dashboard.repository import DashboardRepository
from dashboard.state import DashboardState
from dashboard.throttle import LoginThrottle

_part = DashboardState.dependency

# The page's two routes read several parts together (ui.py), so they take the whole state.
StateDep = Annotated[DashboardState, Depends(DashboardState.from_request)]
SettingsDep = Annotated[DashboardSettings, Depends(_part(lambda s: s.settings))]
RepositoryDep = Annotated[DashboardRepository, Depends(_part(lambda s: s.repository))]
IssuerDep = Annotated[TokenIssuer, Depends(_part(lambda s: s.token_issuer))]
ThrottleDep = Annotated[LoginThrottle, Depends(_part(lambda s: s.login_throttle))]
ReaderDep = Annotated[Principal, Depends(require_scope(SCOPE_SALES_READ))]
AdminDep = Annotated[Principal, Depends(require_scope(SCOPE_ADMIN))]
