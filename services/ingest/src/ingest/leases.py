"""Upload leases: this instance renews the uploads it works on, and settles those of dead ones.

Every instance runs both loops, so a kill -9 of one ingest replica leaves nothing stuck:
another replica (or the same one restarted) finds the upload once its lease ran out, fences
its Kafka transaction and decides by the transaction's outcome: committed uploads go on to
'processing', the others fail. Two loops, so a slow fence never delays this instance's own
renewals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import UUID

from sales_common.lifecycle import PeriodicLoop
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat

from ingest.config import LeaseSettings
from ingest.publisher import RawPublisher, TransactionOutcome
from ingest.repository import UploadsRepository

log = get_logger(__name__)


class LeaseKeeper(PeriodicLoop):
    """Renews the lease of every upload this process is receiving or publishing."""

    def __init__(
        self, settings: LeaseSettings, repository: UploadsRepository, heartbeat: Heartbeat
    ) -> None:
        super().__init__("leases", settings.renew_every_s, heartbeat)
        self._repo = repository
        self._held: set[UUID] = set()

    @contextlib.contextmanager
    def hold(self, upload_id: UUID) -> Iterator[None]:
        """Renew `upload_id`'s lease for as long as the block runs."""
        self._held.add(upload_id)
        try:
            yield
        finally:
            self._held.discard(upload_id)

    async def turn(self) -> None:
        if self._held:
            await self._repo.renew_leases(list(self._held))


class Janitor(PeriodicLoop):
    """Settles uploads whose instance stopped renewing their lease."""

    def __init__(
        self,
        settings: LeaseSettings,
        repository: UploadsRepository,
        publisher: RawPublisher,
        heartbeat: Heartbeat,
    ) -> None:
        super().__init__("janitor", settings.janitor_every_s, heartbeat)
        self._repo = repository
        self._publisher = publisher

    async def settle(self, upload_id: UUID, probe: str | None) -> TransactionOutcome:
        await self._publisher.fence(upload_id)
        if probe is None:  # written just before the commit: the commit never began
            return "aborted"
        if probe == "":  # a header-only upload: its transaction held no record
            return "committed"
        return await self._publisher.outcome(probe)

    async def turn(self) -> None:
        settled = await self._repo.settle_abandoned(self.settle)
        if settled:
            log.warning("uploads_abandoned", outcomes={str(u): o for u, o in settled.items()})
