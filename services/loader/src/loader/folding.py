"""The per-day totals' fold: each batch appends its sums to daily_product_deltas in its own
transaction; about once a second one loader moves them all into daily_product_folded (see
0008_daily_product_deltas.sql). Readers see the same totals either way, through the
daily_product_totals view, so a late or skipped fold costs nothing but a longer delta table."""

from __future__ import annotations

from sales_common.lifecycle import PeriodicLoop
from sales_common.observability import Heartbeat

from loader.metrics import LoaderMetrics
from loader.repository import LoaderRepository


class DeltaFolder(PeriodicLoop):
    def __init__(
        self,
        every_s: float,
        repository: LoaderRepository,
        metrics: LoaderMetrics,
        heartbeat: Heartbeat,
    ) -> None:
        super().__init__("fold", every_s, heartbeat)
        self._repository = repository
        self._metrics = metrics

    async def turn(self) -> None:
        self._metrics.deltas_folded.inc(await self._repository.fold_daily_totals())
