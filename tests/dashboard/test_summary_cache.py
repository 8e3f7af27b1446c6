import asyncio
from datetime import date
from decimal import Decimal

import pytest
from dashboard import service
from dashboard.models import Summary
from dashboard.periods import ALL_TIME, Period
from dashboard.repository import DashboardRepository
from dashboard.service import CachedSummary, SummaryCache, SummaryQuery


class Reads:
    """The cache's reads of the aggregates, faked: each waits until released."""

    def __init__(self) -> None:
        self.made: list[SummaryQuery] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, _: DashboardRepository, query: SummaryQuery) -> Summary:
        self.made.append(query)
        self.started.set()
        await self.release.wait()
        return Summary(
            period=query.period,
            total_sales=Decimal(len(self.made)),
            valid_count=0,
            product_count=0,
            products=[],
            other=None,
            daily=[],
            previous=None,
            rejected_count=0,
            rejections_by_rule={},
        )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    fake = Reads()
    monkeypatch.setattr(service, "read_summary", fake.read)
    return fake


def day(n: int) -> Period:
    return Period(from_=date(2026, 3, n), to=date(2026, 3, n))


async def test_concurrent_misses_of_one_query_share_one_read(reads: Reads) -> None:
    cache = SummaryCache(ttl_s=60)
    repo = DashboardRepository(None)  # type: ignore[arg-type]  # never reached: reads are faked
    query = SummaryQuery(ALL_TIME, 10, None)
    callers = [asyncio.create_task(cache.get(repo, query)) for _ in range(20)]
    await reads.started.wait()  # the first caller reads; the 19 others have asked meanwhile
    reads.release.set()
    bodies = await asyncio.gather(*callers)
    assert len(reads.made) == 1
    assert {b.body for b in bodies} == {bodies[0].body}
    assert b'"period":{"from":null,"to":null,"days":null}' in bodies[0].body


async def test_each_range_is_its_own_entry_and_the_cache_stays_bounded(reads: Reads) -> None:
    reads.release.set()
    cache = SummaryCache(ttl_s=60, max_entries=3)
    repo = DashboardRepository(None)  # type: ignore[arg-type]
    for n in range(1, 6):
        await cache.get(repo, SummaryQuery(day(n), 10, None))
    await cache.get(repo, SummaryQuery(day(5), 10, None))  # cached
    await cache.get(repo, SummaryQuery(day(1), 10, None))  # evicted: read again
    assert [q.period for q in reads.made] == [day(n) for n in (1, 2, 3, 4, 5, 1)]
    assert len(cache._entries) == 3
    assert len(cache._locks) <= 3


class Clock:
    """The cache's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(service, "time", fake)
    return fake


REPO = DashboardRepository(None)  # type: ignore[arg-type]  # never reached: reads are faked
QUERY = SummaryQuery(ALL_TIME, 10, None)


async def cache_with_one_entry(reads: Reads) -> tuple[SummaryCache, CachedSummary]:
    """A cache of 1 s ttl holding the all-time summary, read at the clock's `now`."""
    cache = SummaryCache(ttl_s=1.0)
    reads.release.set()
    return cache, await cache.get(REPO, QUERY)


async def test_an_entry_past_half_its_ttl_is_read_again_while_readers_keep_it(
    reads: Reads, clock: Clock
) -> None:
    cache, first = await cache_with_one_entry(reads)
    reads.release.clear()
    reads.started.clear()
    clock.now += 0.6  # past half the ttl: the next reader starts one read in the background
    during = [await cache.get(REPO, QUERY) for _ in range(5)]
    await reads.started.wait()
    assert during == [first] * 5  # nobody waited for the read
    assert len(reads.made) == 2  # one background read, not one per reader
    reads.release.set()
    await asyncio.gather(*cache._refreshes.values())
    clock.now += 0.5  # the first entry would be past its ttl now; the new one is not
    refreshed = await cache.get(REPO, QUERY)
    assert refreshed.summary.total_sales == 2
    assert len(reads.made) == 2


async def test_an_entry_is_never_served_past_its_ttl(reads: Reads, clock: Clock) -> None:
    cache, _ = await cache_with_one_entry(reads)
    clock.now += 1.0
    assert (await cache.get(REPO, QUERY)).summary.total_sales == 2
    assert not cache._refreshes  # read by the caller, who waited for it


async def test_a_failed_background_read_keeps_the_entry_until_its_ttl(
    reads: Reads, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, first = await cache_with_one_entry(reads)

    async def broken(_: DashboardRepository, __: SummaryQuery) -> Summary:
        raise ConnectionError("database down")

    monkeypatch.setattr(service, "read_summary", broken)
    clock.now += 0.6
    assert await cache.get(REPO, QUERY) == first
    await asyncio.gather(*cache._refreshes.values(), return_exceptions=True)
    assert await cache.get(REPO, QUERY) == first  # still within its ttl; another try started
    await asyncio.gather(*cache._refreshes.values(), return_exceptions=True)
    clock.now += 0.4
    with pytest.raises(ConnectionError):
        await cache.get(REPO, QUERY)  # expired: the caller reads and gets the error


async def test_close_stops_a_background_read(reads: Reads, clock: Clock) -> None:
    cache, _ = await cache_with_one_entry(reads)
    reads.release.clear()
    clock.now += 0.6
    await cache.get(REPO, QUERY)
    await cache.close()  # the read waits for a release that never comes: cancelled
    assert not cache._refreshes
