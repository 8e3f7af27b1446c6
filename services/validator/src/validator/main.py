from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sales_common.errors import install_error_handlers
from sales_common.kafka import KafkaProbe
from sales_common.lifecycle import background_loop
from sales_common.observability import NO_OPENTELEMETRY, Heartbeat, install_observability

from validator.config import ValidatorSettings
from validator.consumer import validator_lanes
from validator.metrics import ValidatorMetrics
from validator.state import ValidatorState


def create_app(settings: ValidatorSettings | None = None) -> FastAPI:
    settings = settings or ValidatorSettings()  # read from the environment
    settings.configure_logging(settings.service_name)
    registry = CollectorRegistry()
    metrics = ValidatorMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, ValidatorState]]:
        async with contextlib.AsyncExitStack() as stack:
            probe = KafkaProbe(settings.kafka)
            stack.push_async_callback(probe.close)
            heartbeats = {"main": Heartbeat(), "express": Heartbeat()}
            lanes = validator_lanes(settings, metrics, heartbeats)
            await stack.enter_async_context(
                background_loop("validator", lanes, *heartbeats.values())
            )
            state = ValidatorState(
                settings=settings,
                readiness_checks={"kafka": probe.check},
                heartbeats={f"validator-{lane}": beat for lane, beat in heartbeats.items()},
            )
            yield state.lifespan_state()

    app = FastAPI(
        title="sales validator", version="1", lifespan=lifespan, telemetry=NO_OPENTELEMETRY
    )
    install_error_handlers(app)
    install_observability(app, registry, settings.access_log)
    return app
