"""HTTP errors that carry their status, rendered by one handler as {"error", "detail"}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sales_common.db import DB_UNAVAILABLE_ERRORS
from sales_common.logging import get_logger

log = get_logger(__name__)


class ApiError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class Unauthorized(ApiError):
    status_code = 401
    error = "unauthorized"

    def __init__(self, detail: Any = "a valid bearer token is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403
    error = "forbidden"


class NotFound(ApiError):
    status_code = 404
    error = "not_found"


class UnprocessableContent(ApiError):
    status_code = 422
    error = "unprocessable"


class UnsupportedMediaType(ApiError):
    status_code = 415
    error = "unsupported_media_type"


class ServiceUnavailable(ApiError):
    status_code = 503
    error = "unavailable"

    def __init__(self, detail: Any, retry_after_s: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


def error_body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(
            error_body(exc.error, exc.detail), status_code=exc.status_code, headers=exc.headers
        )

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse(error_body("invalid_request", detail), status_code=422)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            error_body("http_error", exc.detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database_unavailable", error=repr(exc)[:200])
        unavailable = ServiceUnavailable("the database is unavailable; retry shortly")
        return await on_api_error(request, unavailable)

    app.add_exception_handler(ApiError, on_api_error)
    for error_type in DB_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, on_database_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
