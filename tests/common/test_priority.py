"""Bulk work gives way to the express lane between records, and never waits for it forever."""

import asyncio

from sales_common.priority import LanePriority


async def test_a_fresh_slice_is_not_due_and_a_spent_one_is() -> None:
    assert not LanePriority(slice_s=3600).due()
    assert LanePriority(slice_s=0).due()


async def test_giving_way_starts_a_new_slice() -> None:
    priority = LanePriority(slice_s=3600)
    priority._slice_ends = 0  # spent
    assert priority.due()
    await priority.give_way()
    assert not priority.due()


async def test_work_ready_to_run_gets_its_turn() -> None:
    priority = LanePriority(slice_s=0)
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "a request's step")
    await priority.give_way()
    assert ran == ["a request's step"]


async def test_bulk_work_waits_until_the_express_work_in_flight_is_done() -> None:
    priority = LanePriority(slice_s=0, max_wait_s=3600)
    order: list[str] = []
    express_started, finish_express = asyncio.Event(), asyncio.Event()

    async def express() -> None:
        with priority.express():
            express_started.set()
            await finish_express.wait()
            order.append("express done")

    async def bulk() -> None:
        await express_started.wait()
        await priority.give_way()
        order.append("bulk resumed")

    express_task = asyncio.create_task(express())
    bulk_task = asyncio.create_task(bulk())
    await express_started.wait()
    for _ in range(5):  # the bulk task runs into give_way() and stays there
        await asyncio.sleep(0)
    assert priority.express_busy and order == []
    finish_express.set()
    await asyncio.gather(express_task, bulk_task)
    assert order == ["express done", "bulk resumed"]
    assert not priority.express_busy


async def test_a_flood_of_express_work_slows_bulk_work_but_never_stops_it() -> None:
    priority = LanePriority(slice_s=0, max_wait_s=0.01)
    with priority.express():  # never ends while the bulk work runs
        for _ in range(3):
            await priority.give_way()
    assert not priority.express_busy


async def test_nested_express_work_keeps_bulk_work_waiting_until_the_last_ends() -> None:
    priority = LanePriority()
    with priority.express():
        with priority.express():
            assert priority.express_busy
        assert priority.express_busy
    assert not priority.express_busy
