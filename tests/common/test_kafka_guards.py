import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from sales_common.kafka import AssignmentGuard, default_partition, is_transient


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


def test_keyed_batches_pick_the_default_partitioners_partition() -> None:
    """Records keyed by event id land where send() and the Java client would put them."""
    for count in (1, 3, 6):
        partitions = list(range(count))
        for n in range(200):
            key = f"event-{n}".encode()
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert default_partition(key, count) == expected


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (KafkaTimeoutError(), True),
        (KafkaConnectionError(), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (ProducerFenced(), False),
        (ValueError("bug"), False),
    ],
)
def test_what_with_backoff_retries(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient
