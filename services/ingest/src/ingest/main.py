from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sales_common.auth import TokenVerifier
from sales_common.db import check_database, close_pool, create_pool
from sales_common.errors import install_error_handlers
from sales_common.kafka import KafkaProbe
from sales_common.lifecycle import background_loop
from sales_common.observability import NO_OPENTELEMETRY, Heartbeat, install_observability

from ingest.api import router
from ingest.config import IngestSettings
from ingest.leases import Janitor, LeaseKeeper
from ingest.metrics import IngestMetrics
from ingest.publisher import RawPublisher
from ingest.repository import UploadsRepository
from ingest.service import UploadService
from ingest.state import IngestState

GIL_SWITCH_S = 0.001


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()  # read from the environment
    # While the parse thread runs, the event loop waits up to this long for the GIL at each
    # step of every request (Python's default is 5 ms): measured, it decides whether a
    # small upload during big ones takes 0.5 s or 1-2 s.
    sys.setswitchinterval(GIL_SWITCH_S)
    settings.configure_logging(settings.service_name)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, IngestState]]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(settings.postgres, application_name=settings.service_name)
            stack.push_async_callback(close_pool, pool)
            probe = KafkaProbe(settings.kafka)
            stack.push_async_callback(probe.close)
            repository = UploadsRepository(pool, settings.leases.ttl_s)
            leases_beat, janitor_beat, ready_beat = Heartbeat(), Heartbeat(), Heartbeat()
            publisher = RawPublisher(settings, metrics, ready_beat)
            stack.push_async_callback(publisher.close)  # after everything that publishes
            await stack.enter_async_context(
                background_loop("ready_producers", publisher.ready, ready_beat)
            )
            leases = LeaseKeeper(settings.leases, repository, leases_beat)
            janitor = Janitor(settings.leases, repository, publisher, janitor_beat)
            await stack.enter_async_context(background_loop("leases", leases, leases_beat))
            await stack.enter_async_context(background_loop("janitor", janitor, janitor_beat))
            service = UploadService(settings, repository, publisher, leases, metrics)
            stack.callback(service.close)
            state = IngestState(
                settings=settings,
                token_verifier=TokenVerifier(settings.auth),
                upload_service=service,
                readiness_checks={
                    "postgres": lambda: check_database(pool),
                    "kafka": probe.check,
                },
                heartbeats={
                    "leases": leases_beat,
                    "janitor": janitor_beat,
                    "ready_producers": ready_beat,
                },
            )
            yield state.lifespan_state()

    app = FastAPI(title="sales ingest", version="1", lifespan=lifespan, telemetry=NO_OPENTELEMETRY)
    install_error_handlers(app)
    install_observability(app, registry, settings.access_log)
    app.include_router(router)
    return app
