from __future__ import annotations

from pydantic import BaseModel, Field
from sales_common.settings import AuthSettings, ServiceSettings


class ClientSettings(BaseModel):
    """An OAuth2 client (a program): its Argon2id secret hash and the scopes it may get."""

    secret_hash: str
    scopes: list[str]


class DashboardSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": "DASHBOARD_"}

    service_name: str = "dashboard"
    port: int = 8004
    auth: AuthSettings
    # JSON in the environment: {"client-id": {"secret_hash": "...", "scopes": ["sales:read"]}}
    clients: dict[str, ClientSettings] = Field(default_factory=dict)
    token_ttl_s: int = 900
