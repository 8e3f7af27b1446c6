import pytest
from sales_common.kafka import AssignmentGuard


async def test_a_batch_read_before_an_assignment_is_not_current() -> None:
    guard = AssignmentGuard()
    before = await guard.epoch()
    async with guard.lock:
        assert guard.current(before)
    async with guard.assigning():
        pass
    after = await guard.epoch()
    async with guard.lock:
        assert not guard.current(before)
        assert guard.current(after)


@pytest.mark.parametrize("assignments", [0, 3])
async def test_epoch_counts_assignments(assignments: int) -> None:
    guard = AssignmentGuard()
    for _ in range(assignments):
        async with guard.assigning():
            pass
    assert await guard.epoch() == assignments
