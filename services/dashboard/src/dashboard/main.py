from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sales_common.auth import TokenIssuer, TokenVerifier
from sales_common.db import check_database, close_pool, create_pool, register_json_codecs
from sales_common.errors import install_error_handlers
from sales_common.observability import NO_OPENTELEMETRY, install_observability

from dashboard import api, erasure, tokens, ui
from dashboard.config import DashboardSettings
from dashboard.repository import DashboardRepository
from dashboard.service import SummaryCache
from dashboard.state import DashboardState
from dashboard.throttle import LoginThrottle


def create_app(settings: DashboardSettings | None = None) -> FastAPI:
    settings = settings or DashboardSettings()  # read from the environment
    settings.configure_logging(settings.service_name)
    registry = CollectorRegistry()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, DashboardState]]:
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(
                settings.postgres,
                init=register_json_codecs,
                application_name=settings.service_name,
            )
            stack.push_async_callback(close_pool, pool)
            summary_cache = SummaryCache(settings.summary_cache_s)
            stack.push_async_callback(summary_cache.close)
            state = DashboardState(
                settings=settings,
                repository=DashboardRepository(pool),
                token_issuer=TokenIssuer(settings.auth, ttl_s=settings.token_ttl_s),
                token_verifier=TokenVerifier(settings.auth),
                login_throttle=LoginThrottle(settings.login_limits),
                summary_cache=summary_cache,
                readiness_checks={"postgres": lambda: check_database(pool)},
            )
            yield state.lifespan_state()

    app = FastAPI(
        title="sales dashboard", version="1", lifespan=lifespan, telemetry=NO_OPENTELEMETRY
    )
    install_error_handlers(app)
    install_observability(app, registry, settings.access_log)
    app.include_router(tokens.router)
    app.include_router(api.router)
    app.include_router(erasure.router)
    app.include_router(ui.router)
    return app
