"""The OAuth2 token endpoint: client credentials (RFC 6749 4.4) for programs."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel
from sales_common.auth import verify_secret
from sales_common.errors import ApiError

from dashboard.deps import IssuerDep, SettingsDep

router = APIRouter()


class OAuthError(ApiError):
    """RFC 6749 section 5.2: the `error` field carries the OAuth error code."""

    def __init__(self, error: str, detail: str, status_code: int = 400) -> None:
        super().__init__(detail)
        self.error = error
        self.status_code = status_code
        if status_code == 401:
            self.headers = {"WWW-Authenticate": 'Basic realm="token"'}


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
    scope: str


def _client_credentials(
    request: Request, client_id: str | None, client_secret: str | None
) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
        client_id, _, client_secret = decoded.partition(":")
    if not client_id or not client_secret:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    return client_id, client_secret


@router.post("/oauth/token", response_model=TokenResponse)
async def issue_token(
    request: Request,
    settings: SettingsDep,
    issuer: IssuerDep,
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> TokenResponse:
    """OAuth2 client-credentials grant (RFC 6749 4.4), form-encoded."""
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", f"grant_type '{grant_type}' is not supported")
    cid, secret = _client_credentials(request, client_id, client_secret)
    client = settings.clients.get(cid)
    if client is None or not verify_secret(secret, client.secret_hash):
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    requested = set(scope.split()) if scope else set(client.scopes)
    if not requested <= set(client.scopes):
        raise OAuthError(
            "invalid_scope",
            f"client may not request: {' '.join(sorted(requested - set(client.scopes)))}",
        )
    token = issuer.issue(cid, sorted(requested))
    return TokenResponse(
        access_token=token, expires_in=issuer.ttl_s, scope=" ".join(sorted(requested))
    )
