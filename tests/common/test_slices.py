"""Bulk work in slices: a turn for every ready task once a slice is spent."""

import asyncio

from sales_common.slices import TimeSlices


def test_a_fresh_slice_is_not_due_and_a_spent_one_is() -> None:
    assert not TimeSlices(slice_s=3600).due()
    assert TimeSlices(slice_s=0).due()


async def test_giving_way_starts_a_new_slice() -> None:
    slices = TimeSlices(slice_s=3600)
    slices._slice_ends = 0  # spent
    assert slices.due()
    await slices.give_way()
    assert not slices.due()


async def test_work_ready_to_run_gets_its_turn() -> None:
    ran: list[str] = []
    loop = asyncio.get_running_loop()
    loop.call_soon(ran.append, "a request's step")
    await TimeSlices(slice_s=0).give_way()
    assert ran == ["a request's step"]
