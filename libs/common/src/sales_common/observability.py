"""/metrics, /healthz and /readyz for every service.

- /healthz (liveness): is the process making progress? A consumer loop that stopped beating
  fails it; an unreachable dependency does not (restarting would not fix the dependency).
- /readyz (readiness): can this instance do its work now? 503 while Kafka or PostgreSQL is
  unreachable, or when a consumer loop has stopped, so traffic and rollouts wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_fastapi_instrumentator import Instrumentator

from sales_common.state import ServiceState

ReadinessCheck = Callable[[], Awaitable[None]]


class Heartbeat:
    """Beaten by a background loop on every iteration; stale means stuck or dead."""

    def __init__(self, stale_after_s: float = 60.0) -> None:
        self.stale_after_s = stale_after_s
        self.last_beat = time.monotonic()
        self.stopped_with: BaseException | None = None

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def fail(self, error: BaseException) -> None:
        self.stopped_with = error

    def alive(self) -> bool:
        fresh = time.monotonic() - self.last_beat < self.stale_after_s
        return self.stopped_with is None and fresh


async def _run_check(check: ReadinessCheck, timeout_s: float) -> str | None:
    try:
        await asyncio.wait_for(check(), timeout_s)
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__
    return None


_StateDep = Annotated[ServiceState, Depends(ServiceState.from_request)]


def install_observability(
    app: FastAPI, registry: CollectorRegistry, check_timeout_s: float = 2.0
) -> None:
    """Mount /metrics, /healthz, /readyz.

    Readiness checks and heartbeats come from the service's lifespan state (a `ServiceState`),
    so they belong to the resources the lifespan opened.
    """
    Instrumentator(
        registry=registry, excluded_handlers=["/metrics", "/healthz", "/readyz"]
    ).instrument(app).expose(app, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz(state: _StateDep) -> JSONResponse:
        dead = sorted(name for name, hb in state.heartbeats.items() if not hb.alive())
        if dead:
            return JSONResponse({"status": "stalled", "loops": dead}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(state: _StateDep) -> JSONResponse:
        checks = state.readiness_checks
        results = await asyncio.gather(*(_run_check(c, check_timeout_s) for c in checks.values()))
        failing = {name: err for name, err in zip(checks, results, strict=True) if err}
        for name, heartbeat in state.heartbeats.items():
            if heartbeat.stopped_with is not None:
                failing[f"{name} loop"] = f"stopped: {heartbeat.stopped_with!r}"[:200]
        body: dict[str, Any] = {"status": "not_ready" if failing else "ready"}
        if failing:
            body["failing"] = failing
        return JSONResponse(body, status_code=503 if failing else 200)


def consumer_lag_gauge(registry: CollectorRegistry, service: str) -> Gauge:
    return Gauge(
        f"{service}_consumer_lag_records",
        "Records between this consumer's position and the end of the partition.",
        ["topic", "partition"],
        registry=registry,
    )


def processed_counter(registry: CollectorRegistry) -> Counter:
    """The one metric every pipeline stage shares: rows it finished, by outcome."""
    return Counter(
        "sales_processed_total",
        "Sales rows this service finished processing, by outcome.",
        ["outcome"],
        registry=registry,
    )
