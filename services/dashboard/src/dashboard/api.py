"""HTTP layer of the dashboard: the token endpoint and the read API."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from sales_common.auth import SCOPE_SALES_READ, Principal, TokenIssuer, require_scope, verify_secret
from sales_common.errors import ApiError, NotFound
from sales_common.uploads import fetch_upload

from dashboard.config import DashboardSettings
from dashboard.export import csv_lines
from dashboard.repository import DashboardRepository
from dashboard.service import SUMMARY_DAYS, Summary, SummaryCache, UploadDetail, read_upload

router = APIRouter()
ReaderDep = Annotated[Principal, Depends(require_scope(SCOPE_SALES_READ))]


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
    grant_type: Annotated[str, Form()],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> TokenResponse:
    """OAuth2 client-credentials grant (RFC 6749 4.4), form-encoded."""
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", f"grant_type '{grant_type}' is not supported")
    settings: DashboardSettings = request.state.settings
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
    issuer: TokenIssuer = request.state.token_issuer
    token = issuer.issue(cid, sorted(requested))
    return TokenResponse(
        access_token=token, expires_in=issuer.ttl_s, scope=" ".join(sorted(requested))
    )


@router.get("/api/v1/summary", response_model=Summary)
async def summary(
    request: Request, _: ReaderDep, days: Annotated[int, Query(ge=1, le=366)] = SUMMARY_DAYS
) -> Response:
    """Totals from the aggregate tables, at most `summary_cache_s` old."""
    cache: SummaryCache = request.state.summary_cache
    body = await cache.get(request.state.repository, days)
    return Response(body, media_type="application/json")


@router.get("/api/v1/uploads", response_model=list[dict[str, Any]])
async def recent_uploads(
    request: Request, _: ReaderDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[dict[str, Any]]:
    repo: DashboardRepository = request.state.repository
    return [dict(r) for r in await repo.recent_uploads(limit)]


@router.get("/api/v1/uploads/{upload_id}", response_model=UploadDetail)
async def upload_detail(
    request: Request,
    upload_id: UUID,
    _: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UploadDetail:
    detail = await read_upload(
        request.state.pool, request.state.repository, upload_id, limit, offset
    )
    if detail is None:
        raise NotFound(f"upload {upload_id} not found")
    return detail


REJECTION_COLUMNS = ["row_number", "rules", "messages", "product", "price", "quantity", "date"]


@router.get("/api/v1/uploads/{upload_id}/rejections.csv", response_class=StreamingResponse)
async def rejections_csv(request: Request, upload_id: UUID, _: ReaderDep) -> StreamingResponse:
    """An upload's rejected rows with every reason, as CSV (formula cells neutralised)."""
    if await fetch_upload(request.state.pool, upload_id) is None:
        raise NotFound(f"upload {upload_id} not found")
    repo: DashboardRepository = request.state.repository
    rows = await repo.rejections(upload_id, limit=1_000_000, offset=0)
    table = (
        [
            r["row_number"],
            " ".join(v["rule"] for v in r["violations"]),
            "; ".join(v["message"] for v in r["violations"]),
            *(r["fields"].get(c, "") for c in ("product", "price", "quantity", "date")),
        ]
        for r in rows
    )
    return StreamingResponse(
        csv_lines(REJECTION_COLUMNS, table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="rejections-{upload_id}.csv"'},
    )
