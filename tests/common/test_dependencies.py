"""Every dependency of every route runs on the event loop.

FastAPI runs a plain-function dependency in its thread pool: a thread hop per dependency per
request. The typed-state dependencies were plain functions once, and the dashboard's summary
served 1,450 requests/s instead of 3,300 (make bench). This keeps them coroutines.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard.config import DashboardSettings
from dashboard.main import create_app as dashboard_app
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from ingest.config import IngestSettings
from ingest.main import create_app as ingest_app
from pydantic import SecretStr
from sales_common.pii import EncryptionSettings, PiiSettings
from sales_common.settings import AuthSettings

AUTH = AuthSettings(jwt_secret=SecretStr("k" * 32))
PII = PiiSettings(hmac_key=SecretStr("h" * 32))


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _runs_on_the_loop(call: Any) -> bool:
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else call.__call__
    return inspect.iscoroutinefunction(target)


@pytest.mark.parametrize(
    "app",
    [
        ingest_app(
            IngestSettings(
                auth=AUTH,
                pii_encryption=EncryptionSettings(key=SecretStr("e" * 32)),
                log_json=False,
            )
        ),
        dashboard_app(DashboardSettings(auth=AUTH, pii=PII, log_json=False)),
    ],
    ids=["ingest", "dashboard"],
)
def test_no_route_has_a_dependency_that_needs_a_thread(app: FastAPI) -> None:
    sync = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in app.routes
        if isinstance(route, APIRoute)
        for call in _calls(route.dependant)
        if not _runs_on_the_loop(call)
    }
    assert sync == set()
