from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sales_common.db import (
    check_database,
    close_pool,
    create_pool,
    is_transient_db_error,
)
from sales_common.errors import install_error_handlers
from sales_common.kafka import KafkaProbe, with_backoff
from sales_common.lifecycle import background_loop
from sales_common.observability import NO_OPENTELEMETRY, Heartbeat, install_observability
from sales_common.schema.migrations import migrate

from loader.config import LoaderSettings
from loader.consumer import loader_lanes
from loader.folding import DeltaFolder
from loader.metrics import LoaderMetrics
from loader.repository import LoaderRepository, init_connection
from loader.state import LoaderState


def create_app(settings: LoaderSettings | None = None) -> FastAPI:
    settings = settings or LoaderSettings()
    settings.configure_logging(settings.service_name)
    registry = CollectorRegistry()
    metrics = LoaderMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, LoaderState]]:
        async with contextlib.AsyncExitStack() as stack:
            if settings.migrate_on_start:
                await with_backoff(
                    lambda: migrate(settings.postgres),
                    "migrate",
                    transient=is_transient_db_error,
                    max_s=5,
                )
            pool = await create_pool(
                settings.postgres,
                init=init_connection,
                application_name=settings.service_name,
            )
            stack.push_async_callback(close_pool, pool)
            probe = KafkaProbe(settings.kafka)
            stack.push_async_callback(probe.close)
            heartbeats = {"main": Heartbeat(), "express": Heartbeat()}
            repository = LoaderRepository(pool, settings.group_id)
            lanes = loader_lanes(settings, repository, metrics, heartbeats)
            await stack.enter_async_context(background_loop("loader", lanes, *heartbeats.values()))
            fold_beat = Heartbeat()
            folder = DeltaFolder(settings.fold_every_s, repository, metrics, fold_beat)
            await stack.enter_async_context(background_loop("fold", folder, fold_beat))
            state = LoaderState(
                settings=settings,
                readiness_checks={
                    "postgres": lambda: check_database(pool),
                    "kafka": probe.check,
                },
                heartbeats={
                    **{f"loader-{lane}": beat for lane, beat in heartbeats.items()},
                    "fold": fold_beat,
                },
            )
            yield state.lifespan_state()

    app = FastAPI(title="sales loader", version="1", lifespan=lifespan, telemetry=NO_OPENTELEMETRY)
    install_error_handlers(app)
    install_observability(app, registry, settings.access_log)
    return app
