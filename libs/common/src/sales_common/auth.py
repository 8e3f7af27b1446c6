"""Bearer tokens: issued by the dashboard, verified by every HTTP service.

Verification pins the algorithms per key source, never trusting the token header: HS256 with
the built-in secret, or RS256/ES256 with the external issuer's JWKS keys (an HS256 token is
never checked against a public key). `exp`, `iss` and `aud` are required and checked.
Oversized tokens are refused before any parsing.

A token that verified is remembered until its `exp` (plus the leeway), keyed by the whole
token string, signature included: a program polling the dashboard pays the signature check
once per token, not once per request (it was a fifth of the dashboard's CPU time). A token
that fails is never remembered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from fastapi.security import HTTPBearer
from jose import JWTError, jwt
from pwdlib import PasswordHash

from sales_common.errors import Forbidden, Unauthorized
from sales_common.settings import AuthSettings
from sales_common.state import ServiceState

ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 8192
VERIFIED_TOKENS_KEPT = 10_000

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


class JwksCache:
    """The external issuer's signing keys by `kid`: cached, refetched on an unknown `kid`
    (at most every `min_refetch_s`, so a flood of made-up kids cannot hammer the issuer)."""

    def __init__(self, url: str, ttl_s: float, min_refetch_s: float = 10.0) -> None:
        self._url = url
        self._ttl_s = ttl_s
        self._min_refetch_s = min_refetch_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> dict[str, Any] | None:
        age = time.monotonic() - self._fetched_at
        if age > self._ttl_s or (kid not in self._keys and age > self._min_refetch_s):
            async with self._lock:
                if time.monotonic() - self._fetched_at > self._min_refetch_s:
                    await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self._url)
            response.raise_for_status()
            keys = response.json().get("keys", [])
        self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and "kid" in k}
        self._fetched_at = time.monotonic()


class TokenVerifier:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        # token -> (principal, time after which it is expired); insertion-ordered
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._jwks = (
            JwksCache(settings.oidc_jwks_url, settings.jwks_cache_s)
            if settings.oidc_jwks_url
            else None
        )

    async def verify(self, token: str, now: float | None = None) -> Principal:
        if len(token.encode()) > MAX_TOKEN_BYTES:
            raise Unauthorized("token too large")
        remembered = self._verified.get(token)
        if remembered is not None:
            if (time.time() if now is None else now) <= remembered[1]:
                return remembered[0]
            del self._verified[token]
        principal, expires_at = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (principal, expires_at)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        algorithm = header.get("alg")
        settings = self._settings
        if algorithm == ALGORITHM:
            key: str | dict[str, Any] = settings.jwt_secret.get_secret_value()
            algorithms, issuer, audience = [ALGORITHM], settings.issuer, settings.audience
        elif self._jwks is not None and algorithm in settings.oidc_algorithms:
            try:
                found = await self._jwks.key(str(header.get("kid", "")))
            except (httpx.HTTPError, ValueError) as exc:
                raise Unauthorized("the token issuer's keys are unavailable") from exc
            if found is None:
                raise Unauthorized("invalid token: unknown key id")
            key, algorithms = found, [str(algorithm)]
            issuer = settings.oidc_issuer or ""
            audience = settings.oidc_audience or settings.audience
        else:
            raise Unauthorized(f"invalid token: algorithm {algorithm!r} is not accepted")
        return self._decode(token, key, algorithms, issuer, audience)

    def _decode(
        self,
        token: str,
        key: str | dict[str, Any],
        algorithms: list[str],
        issuer: str,
        audience: str,
    ) -> tuple[Principal, float]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=audience,
                issuer=issuer,
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
        principal = Principal(subject=str(claims["sub"]), scopes=frozenset(scope.split()))
        return principal, float(claims["exp"]) + self._settings.leeway_s


@dataclass(frozen=True, kw_only=True)
class AuthState(ServiceState):
    """The lifespan state of a service that accepts bearer tokens (see `require_scope`)."""

    token_verifier: TokenVerifier


class _ScopedBearer(HTTPBearer):
    """The bearer scheme (as OpenAPI documents it) that also verifies the token and its scope.

    One dependency instead of three (scheme, state, check): FastAPI resolves every dependency
    on every request, and on the dashboard's cached summary that resolution was most of the
    handler's own cost.
    """

    def __init__(self, scope: str) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer")
        self.required_scope = scope

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not token or scheme.lower() != "bearer":
            raise Unauthorized()
        principal = await AuthState.of(request).token_verifier.verify(token)
        if self.required_scope not in principal.scopes:
            raise Forbidden(f"scope '{self.required_scope}' is required")
        return principal


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: 401 without a valid token, 403 without `scope`."""
    return _ScopedBearer(scope)
