"""Running a consumer loop, or work done every few seconds, inside a FastAPI lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from sales_common.logging import get_logger
from sales_common.observability import Heartbeat

log = get_logger(__name__)


class ConsumerLoop(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def background_loop(
    name: str, loop: ConsumerLoop, *heartbeats: Heartbeat, stop_timeout_s: float = 20.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Start `loop.run()`; on exit ask it to stop, let it finish its batch, then cancel.

    A loop that dies marks its heartbeats failed, so /healthz turns 503 and the
    orchestrator restarts the process, rather than serving a stalled consumer.
    """

    async def supervised() -> None:
        try:
            await loop.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            for heartbeat in heartbeats:
                heartbeat.fail(exc)
            log.exception("loop_crashed", loop=name)
            raise

    task = asyncio.create_task(supervised(), name=name)
    try:
        yield task
    finally:
        loop.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), stop_timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception as exc:  # already logged by supervised()
            log.debug("loop_exit_error", loop=name, error=repr(exc))
        log.info("loop_stopped", loop=name)


class PeriodicLoop:
    """Run `turn()` every `every_s` until stopped (a `ConsumerLoop` for `background_loop`); a
    failed turn is logged and retried next time."""

    def __init__(self, name: str, every_s: float, heartbeat: Heartbeat) -> None:
        self._name = name
        self._every_s = every_s
        self._heartbeat = heartbeat
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._heartbeat.beat()
            try:
                await self.turn()
            except Exception as exc:  # the database or broker is down: try again next turn
                log.warning("periodic_turn_failed", loop=self._name, error=repr(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._every_s)

    async def turn(self) -> None:
        raise NotImplementedError
