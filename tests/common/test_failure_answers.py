"""How services answer when PostgreSQL goes away or a consumer loop dies."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sales_common.db import is_transient_db_error
from sales_common.errors import install_error_handlers
from sales_common.observability import Heartbeat, install_observability
from sales_common.state import ServiceState


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.InternalClientError("cannot switch to state 15; another operation"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (asyncpg.DeadlockDetectedError("deadlock"), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.UndefinedTableError("no such table"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_database_errors(error: BaseException, transient: bool) -> None:
    assert is_transient_db_error(error) is transient


def _app(error: Exception | None = None, dead_loop: bool = False) -> FastAPI:
    heartbeat = Heartbeat()
    if dead_loop:
        heartbeat.fail(asyncpg.UndefinedTableError("relation missing"))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, ServiceState]]:
        yield ServiceState(readiness_checks={}, heartbeats={"loader": heartbeat}).lifespan_state()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    install_observability(app, CollectorRegistry(), access_log="notable")

    @app.get("/boom")
    async def boom() -> None:
        assert error is not None
        raise error

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=_with_state(app, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)


def _with_state(app: FastAPI, state: Any) -> Any:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    return asgi


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.TooManyConnectionsError("too many clients"),
    ],
)
async def test_an_unreachable_database_is_a_503_with_retry_after(error: Exception) -> None:
    response = await _get(_app(error), "/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "detail": "the database is unavailable; retry shortly",
    }


async def test_a_stopped_loop_fails_readiness_as_well_as_liveness() -> None:
    app = _app(dead_loop=True)
    ready, live = await _get(app, "/readyz"), await _get(app, "/healthz")
    assert (ready.status_code, live.status_code) == (503, 503)
    assert "relation missing" in ready.json()["failing"]["loader loop"]


async def test_a_running_loop_is_ready() -> None:
    response = await _get(_app(), "/readyz")
    assert response.status_code == 200, response.text
