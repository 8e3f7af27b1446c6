"""Run a service under uvicorn: `python -m <service>`."""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from sales_common.settings import ServiceSettings

# Longer than a batch in flight, shorter than the orchestrator's grace period (30 s).
GRACEFUL_SHUTDOWN_S = 25


class GracefulServer(uvicorn.Server):
    """Exits 0 after a graceful SIGTERM shutdown.

    uvicorn re-raises the captured signal once it has shut down, so the process would end
    "killed by SIGTERM" even though it drained cleanly; a clean drain is success.
    """

    def __init__(self, config: uvicorn.Config, gc_threshold: int) -> None:
        super().__init__(config)
        self._gc_threshold = gc_threshold

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._gc_threshold:
            # Modules, app and pools live as long as the process: no collection need visit them.
            # Start-up's garbage goes first, or it would be frozen with them.
            gc.collect()
            gc.freeze()
            gc.set_threshold(self._gc_threshold, *gc.get_threshold()[1:])

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True  # a second signal: stop waiting
        self.should_exit = True


def serve(create_app: Callable[[], FastAPI], settings: ServiceSettings) -> None:
    config = uvicorn.Config(
        create_app,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,  # configure_logging() owns the handlers
        access_log=False,  # HttpTelemetry logs requests, with fields (ServiceSettings.access_log)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        proxy_headers=True,
    )
    GracefulServer(config, settings.gc_threshold).run()
