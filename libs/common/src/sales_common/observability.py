"""/metrics (with every request counted, timed and logged), /healthz and /readyz for every service.

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
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sales_common.logging import get_logger
from sales_common.settings import AccessLog
from sales_common.state import ServiceState

log = get_logger(__name__)

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

# For FastAPI(telemetry=...): the services' metrics are Prometheus (HttpTelemetry) and no
# OpenTelemetry SDK is installed, so FastAPI's native telemetry would only look up the
# unconfigured providers on every request (~10 us of the dashboard's cached summary).
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

# Seconds: a cached read takes a few milliseconds, an upload's POST up to minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SLOW_REQUEST_S = 1.0
_UNMATCHED = "none"  # the handler label of a path no route serves: bounded, unlike the path
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpTelemetry:
    """Counts, times and logs every request, per route template (`/api/v1/uploads/{upload_id}`):
    `http_requests_total{handler,method,status}` (status as `2xx`),
    `http_request_duration_seconds{handler,method}`, and an `http_request` log line with
    method, path, handler, status and duration, for every request or (`access_log`
    "notable") only the failed, the slow and those that are not reads.

    The route is read after the app has routed the request (`scope["route"]`), so nothing
    is matched twice. prometheus-fastapi-instrumentator, which this replaces with the same
    metric names, matched every route again before each request and wrapped it in a Request
    and a Response; with uvicorn's access line (formatted once per log handler) that was
    half of the dashboard's CPU for a cached summary.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: CollectorRegistry,
        excluded: frozenset[str],
        access_log: AccessLog,
    ) -> None:
        self.app = app
        self.excluded = excluded
        self.access_log = access_log
        self.requests = Counter(
            "http_requests",
            "Total number of requests by method, status and handler.",
            ["handler", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency of requests by handler and method.",
            ["handler", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # labels() takes a lock and builds a key on every call; the children are few.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            handler = getattr(scope.get("route"), "path", None) or _UNMATCHED
            if handler not in self.excluded:
                elapsed = time.perf_counter() - started
                method = scope["method"]
                requests, latency = self._child(handler, method, status // 100)
                requests.inc()
                latency.observe(elapsed)
                if self.access_log == "all" or (
                    self.access_log == "notable"
                    and (status >= 400 or elapsed >= SLOW_REQUEST_S or method not in _READS)
                ):
                    client = scope.get("client")
                    log.info(
                        "http_request",
                        method=method,
                        path=scope["path"],
                        handler=handler,
                        status=status,
                        duration_ms=round(elapsed * 1000, 1),
                        client=f"{client[0]}:{client[1]}" if client else None,
                    )

    def _child(self, handler: str, method: str, status_class: int) -> tuple[Counter, Histogram]:
        key = (handler, method, status_class)
        child = self._children.get(key)
        if child is None:
            child = (
                self.requests.labels(handler, method, f"{status_class}xx"),
                self.latency.labels(handler, method),
            )
            self._children[key] = child
        return child


def install_observability(
    app: FastAPI,
    registry: CollectorRegistry,
    access_log: AccessLog,
    check_timeout_s: float = 2.0,
) -> None:
    """Mount /metrics, /healthz, /readyz and observe every other request (`HttpTelemetry`).

    Readiness checks and heartbeats come from the service's lifespan state (a `ServiceState`),
    so they belong to the resources the lifespan opened.
    """
    app.add_middleware(
        HttpTelemetry,
        registry=registry,
        excluded=frozenset({"/metrics", "/healthz", "/readyz"}),
        access_log=access_log,
    )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

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
