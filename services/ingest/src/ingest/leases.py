"""Upload leases: this instance renews the uploads it works on, and fails those of dead ones.

Every instance runs both halves, so a kill -9 of one ingest replica leaves nothing stuck:
another replica (or the same one restarted) finds the upload within a lease and a scan,
fences its Kafka transaction and marks it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from uuid import UUID

from sales_common.logging import get_logger
from sales_common.observability import Heartbeat

from ingest.config import LeaseSettings
from ingest.publisher import RawPublisher
from ingest.repository import UploadsRepository

log = get_logger(__name__)


class LeaseKeeper:
    """A background loop: renew the leases this process holds, and run the janitor."""

    def __init__(
        self,
        settings: LeaseSettings,
        repository: UploadsRepository,
        publisher: RawPublisher,
        heartbeat: Heartbeat,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._publisher = publisher
        self._heartbeat = heartbeat
        self._held: set[UUID] = set()
        self._stopping = asyncio.Event()

    @contextlib.contextmanager
    def hold(self, upload_id: UUID) -> Iterator[None]:
        """Renew `upload_id`'s lease for as long as the block runs."""
        self._held.add(upload_id)
        try:
            yield
        finally:
            self._held.discard(upload_id)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(self._settings.renew_every_s, self._settings.janitor_every_s)
        next_scan = 0.0
        while not self._stopping.is_set():
            self._heartbeat.beat()
            try:
                if self._held:
                    await self._repo.renew_leases(list(self._held))
                if loop.time() >= next_scan:
                    next_scan = loop.time() + self._settings.janitor_every_s
                    failed = await self._repo.fail_abandoned(self._publisher.fence)
                    if failed:
                        log.warning("uploads_abandoned", upload_ids=[str(u) for u in failed])
            except Exception as exc:  # the database or broker is down: try again next turn
                log.warning("lease_round_failed", error=repr(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), period)
