"""Typed lifespan state: handlers and require_scope get typed parts, never loose attributes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends, FastAPI, Request
from sales_common.auth import (
    SCOPE_SALES_READ,
    AuthState,
    Principal,
    TokenIssuer,
    TokenVerifier,
    require_scope,
)
from sales_common.errors import install_error_handlers
from sales_common.settings import AuthSettings
from sales_common.state import ServiceState

AUTH = AuthSettings(jwt_secret="s" * 40)


@dataclass(frozen=True, kw_only=True)
class ExampleState(AuthState):
    greeting: str


@dataclass(frozen=True, kw_only=True)
class OtherState(ServiceState):
    pass


# Module level: FastAPI resolves the handler's string annotations in this module's globals.
GreetingDep = Annotated[str, Depends(ExampleState.dependency(lambda s: s.greeting))]
ReaderDep = Annotated[Principal, Depends(require_scope(SCOPE_SALES_READ))]


def _app(state: ServiceState) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, ServiceState]]:
        yield state.lifespan_state()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/greeting")
    async def read_greeting(text: GreetingDep, principal: ReaderDep) -> dict[str, str]:
        return {"greeting": text, "subject": principal.subject}

    return app


async def _get(app: FastAPI, token: str) -> httpx.Response:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/greeting", headers={"Authorization": f"Bearer {token}"})


async def test_parts_of_the_state_and_the_verifier_reach_the_handler() -> None:
    state = ExampleState(readiness_checks={}, token_verifier=TokenVerifier(AUTH), greeting="hi")
    token = TokenIssuer(AUTH).issue("viewer", [SCOPE_SALES_READ])
    response = await _get(_app(state), token)
    assert response.status_code == 200, response.text
    assert response.json() == {"greeting": "hi", "subject": "viewer"}


async def test_a_missing_scope_is_refused_through_the_typed_state() -> None:
    state = ExampleState(readiness_checks={}, token_verifier=TokenVerifier(AUTH), greeting="hi")
    token = TokenIssuer(AUTH).issue("uploader", ["uploads:write"])
    response = await _get(_app(state), token)
    assert response.status_code == 403


def test_a_state_of_another_type_is_refused() -> None:
    scope = {"type": "http", "state": OtherState(readiness_checks={}).lifespan_state()}
    request = Request(scope)
    assert isinstance(ServiceState.of(request), OtherState)
    with pytest.raises(TypeError, match="OtherState, not ExampleState"):
        ExampleState.of(request)
