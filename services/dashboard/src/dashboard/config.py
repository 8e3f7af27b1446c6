from __future__ import annotations

from pydantic import BaseModel, Field
from sales_common.pii import PiiSettings
from sales_common.services import SERVICES
from sales_common.settings import AuthSettings, ServiceSettings


class ClientSettings(BaseModel):
    """An OAuth2 client (a program): its Argon2id secret hash and the scopes it may get."""

    secret_hash: str
    scopes: list[str]


class UserSettings(BaseModel):
    """A person who may log in to the web page: an Argon2id password hash and scopes."""

    password_hash: str
    scopes: list[str] = Field(default_factory=lambda: ["sales:read"])


class LoginLimits(BaseModel):
    """Failed logins allowed per (user, address) within the window before 429."""

    max_failures: int = 5
    window_s: int = 300


_SERVICE = SERVICES["dashboard"]


class DashboardSettings(ServiceSettings):
    model_config = ServiceSettings.model_config | {"env_prefix": _SERVICE.env_prefix}

    service_name: str = _SERVICE.name
    port: int = _SERVICE.port
    auth: AuthSettings
    # The validator's hashing keys: an erasure (erasure.py) looks a customer up under each.
    # DASHBOARD_PII__PREVIOUS_HMAC_KEYS is JSON: {"k0": "the key k1 replaced"}.
    pii: PiiSettings
    # JSON in the environment: {"client-id": {"secret_hash": "...", "scopes": ["sales:read"]}}
    clients: dict[str, ClientSettings] = Field(default_factory=dict)
    token_ttl_s: int = 900
    # JSON in the environment: {"alice": {"password_hash": "$argon2id$...", "scopes": [...]}}
    users: dict[str, UserSettings] = Field(default_factory=dict)
    session_ttl_s: int = 900
    login_limits: LoginLimits = Field(default_factory=LoginLimits)
    refresh_s: int = 5
    # How stale GET /api/v1/summary may be; 0 reads the aggregates on every request.
    summary_cache_s: float = 1.0
    # Products the summary lists one by one; the rest are summed as one "Other" bar.
    top_products: int = Field(default=10, ge=1, le=100)
