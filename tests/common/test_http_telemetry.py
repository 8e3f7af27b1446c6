"""Every request counted and timed per route template, and logged by the access-log policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sales_common import observability
from sales_common.errors import NotFound, install_error_handlers
from sales_common.logging import configure_logging
from sales_common.observability import install_observability
from sales_common.settings import AccessLog


def _app(registry: CollectorRegistry, access_log: AccessLog) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_observability(app, registry, access_log)

    @app.get("/items/{item_id}")
    async def item(item_id: UUID) -> dict[str, str]:
        if item_id.int == 0:
            raise NotFound("no such item")
        return {"id": str(item_id)}

    @app.post("/items")
    async def create() -> dict[str, str]:
        return {}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return app


async def _requests(app: FastAPI, *calls: tuple[str, str]) -> list[int]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return [(await client.request(method, path)).status_code for method, path in calls]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "service.log"
    configure_logging("test", log_file=str(path))
    yield path
    configure_logging("test")  # closes the file


def _logged(path: Path) -> list[tuple[str, str, int]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [(e["method"], e["handler"], e["status"]) for e in lines if e["event"] == "http_request"]


CALLS = (
    ("GET", "/items/8c0a7a4b-6a3a-4f8e-9f8e-1d2c3b4a5f6e"),
    ("GET", "/items/00000000-0000-0000-0000-000000000000"),
    ("GET", "/nowhere/at/all"),
    ("POST", "/items"),
    ("GET", "/boom"),
    ("GET", "/metrics"),
)


async def test_requests_are_counted_and_timed_by_route_template(log_file: Path) -> None:
    registry = CollectorRegistry()
    statuses = await _requests(_app(registry, "notable"), *CALLS)
    assert statuses == [200, 404, 404, 200, 500, 200]

    def count(handler: str, method: str, status: str) -> float | None:
        labels = {"handler": handler, "method": method, "status": status}
        return registry.get_sample_value("http_requests_total", labels)

    assert count("/items/{item_id}", "GET", "2xx") == 1
    assert count("/items/{item_id}", "GET", "4xx") == 1
    assert count("none", "GET", "4xx") == 1  # a path no route serves: one label, not the path
    assert count("/items", "POST", "2xx") == 1
    assert count("/boom", "GET", "5xx") == 1
    assert count("/metrics", "GET", "2xx") is None  # the scrape is not counted
    timed = registry.get_sample_value(
        "http_request_duration_seconds_count", {"handler": "/items/{item_id}", "method": "GET"}
    )
    assert timed == 2


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            "notable",  # failed, slow, or not a read: the successful reads are only counted
            [
                ("GET", "/items/{item_id}", 404),
                ("GET", "none", 404),
                ("POST", "/items", 200),
                ("GET", "/boom", 500),
            ],
        ),
        (
            "all",
            [
                ("GET", "/items/{item_id}", 200),
                ("GET", "/items/{item_id}", 404),
                ("GET", "none", 404),
                ("POST", "/items", 200),
                ("GET", "/boom", 500),
            ],
        ),
        ("off", []),
    ],
)
async def test_the_access_log_policy(
    log_file: Path, policy: AccessLog, expected: list[tuple[str, str, int]]
) -> None:
    await _requests(_app(CollectorRegistry(), policy), *CALLS)
    assert _logged(log_file) == expected


async def test_a_slow_read_is_notable(log_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "SLOW_REQUEST_S", 0.0)  # every request is "slow" now
    await _requests(_app(CollectorRegistry(), "notable"), CALLS[0])
    assert _logged(log_file) == [("GET", "/items/{item_id}", 200)]
