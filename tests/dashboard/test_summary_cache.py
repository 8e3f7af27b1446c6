import asyncio
from datetime import date
from decimal import Decimal

import pytest
from dashboard import service
from dashboard.models import Summary
from dashboard.periods import ALL_TIME, Period
from dashboard.repository import DashboardRepository
from dashboard.service import SummaryCache, SummaryQuery


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
