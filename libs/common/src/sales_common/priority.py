"""Small uploads first inside one process: the express lane's work runs before the bulk work.

A service's lanes share one event loop (and one GIL). Bulk work, a big upload being published
or a main-lane batch being transformed, is CPU in the loop: without turns it held the loop for
50-150 ms at a time, and a small upload waited that long at every hop (ingest, validator,
loader). Bulk work now asks `due()` between records (a clock read) and, once its slice of
`slice_s` is spent, awaits `give_way()`: every ready task gets a turn and, while express work
is in flight, the bulk work waits for it (at most `max_wait_s` in a row, so a flood of small
uploads slows the bulk work but never stops it).

Only give way where the bulk work holds nothing the express lane may wait for: a database
row lock held across `give_way()` would stall the express lane behind a paused holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator


class LanePriority:
    def __init__(self, slice_s: float = 0.002, max_wait_s: float = 0.1) -> None:
        self._slice_s = slice_s
        self._max_wait_s = max_wait_s
        self._express = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._slice_ends = time.perf_counter() + slice_s

    @contextlib.contextmanager
    def express(self) -> Iterator[None]:
        """Around express work: bulk work waits while any is in flight."""
        self._express += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._express -= 1
            if not self._express:
                self._idle.set()

    @property
    def express_busy(self) -> bool:
        return self._express > 0

    def due(self) -> bool:
        """Whether the bulk work's slice is spent: then it should `give_way()`."""
        return time.perf_counter() >= self._slice_ends

    async def give_way(self) -> None:
        """A turn for every ready task, then for the express work in flight."""
        # Twice: a result handed over from a worker thread (a poll, a commit) wakes its task
        # one loop iteration after the callback that delivers it.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if self._express:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._max_wait_s)
        self._slice_ends = time.perf_counter() + self._slice_s
