"""Bearer tokens: issued by the dashboard, verified by every HTTP service.

Verification pins the algorithm (never taken from the token header), and requires and checks
`exp`, `iss` and `aud`. Oversized tokens are refused before any parsing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import JWTError, jwt
from pwdlib import PasswordHash

from sales_common.errors import Forbidden, Unauthorized
from sales_common.settings import AuthSettings

ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 8192

SCOPE_UPLOADS_WRITE = "uploads:write"
SCOPE_SALES_READ = "sales:read"
SCOPE_ADMIN = "admin"


_secret_hasher = PasswordHash.recommended()  # Argon2id


def hash_secret(secret: str) -> str:
    return _secret_hasher.hash(secret)


def verify_secret(secret: str, secret_hash: str) -> bool:
    return bool(_secret_hasher.verify(secret, secret_hash))


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]


class TokenIssuer:
    def __init__(self, settings: AuthSettings, ttl_s: int = 900) -> None:
        self._settings = settings
        self.ttl_s = ttl_s

    def issue(self, subject: str, scopes: list[str], now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": subject,
            "scope": " ".join(sorted(scopes)),
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl_s,
        }
        key = self._settings.jwt_secret.get_secret_value()
        return str(jwt.encode(claims, key, algorithm=ALGORITHM))


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings

    def verify(self, token: str) -> Principal:
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise Unauthorized("token too large")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._settings.jwt_secret.get_secret_value(),
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                options={
                    "require_exp": True,
                    "require_iss": True,
                    "require_aud": True,
                    "require_sub": True,
                    "leeway": self._settings.leeway_s,
                },
            )
        except JWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise Unauthorized("invalid token: scope must be a string")
        return Principal(subject=str(claims["sub"]), scopes=frozenset(scope.split()))


_bearer = HTTPBearer(auto_error=False)


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: 401 without a valid token, 403 without `scope`."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized()
        verifier: TokenVerifier = request.state.token_verifier
        principal = verifier.verify(credentials.credentials)
        if scope not in principal.scopes:
            raise Forbidden(f"scope '{scope}' is required")
        return principal

    return dependency
