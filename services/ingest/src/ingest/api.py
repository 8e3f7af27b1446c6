"""HTTP layer of ingest: content negotiation and status codes; the work is in service.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sales_common.auth import SCOPE_ADMIN
from sales_common.errors import Forbidden, UnsupportedMediaType
from sales_common.uploads import UploadStatus

from ingest.body import ExpectedBody, MeteredReceive, PayloadTooLarge
from ingest.deps import SettingsDep, UploaderDep, UploadServiceDep
from ingest.service import UploadOutcome

router = APIRouter(prefix="/api/v1")
CSV_TYPES = {"text/csv", "application/csv", "text/plain", "application/octet-stream"}
CHUNK_BYTES = 256 * 1024


class UploadAccepted(BaseModel):
    upload_id: UUID
    status: str
    rows: int | None
    duplicate: bool
    idempotent_replay: bool
    status_url: str


def _body(outcome: UploadOutcome) -> UploadAccepted:
    return UploadAccepted(
        upload_id=outcome.upload_id,
        status=outcome.status,
        rows=outcome.rows,
        duplicate=outcome.duplicate,
        idempotent_replay=outcome.replayed,
        status_url=f"/api/v1/uploads/{outcome.upload_id}",
    )


async def _multipart_file(request: Request) -> tuple[str, AsyncIterator[bytes]]:
    # Starlette spools file parts to disk past 1 MiB, so this does not hold the file in memory.
    form = await request.form(max_files=1, max_fields=10)
    part = form.get("file")
    if part is None or isinstance(part, str):
        raise UnsupportedMediaType("multipart upload needs a file part named 'file'")

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await part.read(CHUNK_BYTES):
            yield chunk

    return part.filename or "upload.csv", chunks()


@router.post(
    "/uploads",
    status_code=202,
    response_model=UploadAccepted,
    responses={200: {"model": UploadAccepted, "description": "duplicate or replayed upload"}},
)
async def create_upload(
    request: Request,
    principal: UploaderDep,
    settings: SettingsDep,
    service: UploadServiceDep,
    filename: Annotated[str | None, Query(max_length=255)] = None,
    reload: Annotated[bool, Query(description="Load identical content again (admin)")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Stream a CSV (text/csv body, or multipart field `file`) into the pipeline."""
    if reload and SCOPE_ADMIN not in principal.scopes:
        raise Forbidden("a deliberate re-load needs the 'admin' scope")
    limits = settings.uploads
    expected = ExpectedBody.from_headers(request.headers)
    if expected.length is not None and expected.length > limits.max_bytes:
        raise PayloadTooLarge(f"the upload exceeds the limit of {limits.max_bytes} bytes")
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed uploads are not accepted; send plain CSV")
    # Every byte is read through the meter: idle timeout, size limit, length and digests.
    meter = MeteredReceive(request.receive, expected, limits.idle_timeout_s, limits.max_bytes)
    request = Request(request.scope, meter)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        name, body = await _multipart_file(request)
    elif media_type in CSV_TYPES:
        name, body = "upload.csv", request.stream()
    else:
        raise UnsupportedMediaType(
            f"unsupported content type '{media_type or 'none'}': send text/csv or multipart"
        )
    outcome = await service.upload(
        meter.checked(body), filename or name, principal, idempotency_key, reload
    )
    return JSONResponse(_body(outcome).model_dump(mode="json"), status_code=outcome.http_status)


@router.get("/uploads/{upload_id}", response_model=UploadStatus)
async def get_upload(upload_id: UUID, _: UploaderDep, service: UploadServiceDep) -> UploadStatus:
    return await service.status(upload_id)
