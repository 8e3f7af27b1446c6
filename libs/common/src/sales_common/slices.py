"""Bulk CPU work in short slices, so a small upload never waits behind a big one's.

A service's lanes share one event loop (and one GIL). Bulk work (a big upload being packed
and published, a main-lane batch being transformed or decoded) is CPU in that loop: it held
the loop for 50-150 ms at a time, and a 6-row upload waited that long at every hop (ingest's
POST and status, validator, loader). Bulk work now asks `due()` between records (a clock
read) and, once its slice is spent, awaits `give_way()`: every task ready to run, the
express lane's among them, gets its turn before the next slice.

Measured (docs/BENCHMARKS.md "Small uploads during big ones"): also pausing the bulk work
while express work was in flight did not make small uploads faster than the slices alone.
"""

from __future__ import annotations

import asyncio
import time


class TimeSlices:
    def __init__(self, slice_s: float = 0.002) -> None:
        self._slice_s = slice_s
        self._slice_ends = time.perf_counter() + slice_s

    def restart(self) -> None:
        """A full slice from now: at the start of a batch, after the loop was elsewhere."""
        self._slice_ends = time.perf_counter() + self._slice_s

    def due(self) -> bool:
        """Whether the current slice is spent: then the bulk work should `give_way()`."""
        return time.perf_counter() >= self._slice_ends

    async def give_way(self) -> None:
        """A turn for every task ready to run, then a new slice."""
        # Twice: a result handed over from a worker thread (a poll, a commit) wakes its task
        # one loop iteration after the callback that delivers it.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.restart()
