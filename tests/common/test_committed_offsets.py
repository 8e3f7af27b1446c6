"""committed_offsets, what a rewind seeks to: a partition whose committed offset came back
with an error has an offset nobody knows yet, and is asked for again; only a partition that
came back without one and without an error reads as having none."""

import asyncio
from dataclasses import dataclass

from confluent_kafka import KafkaError
from sales_common.consume import committed_offsets


@dataclass
class Answer:
    """What librdkafka hands back for a partition (confluent_kafka.TopicPartition's fields)."""

    topic: str
    partition: int
    offset: int
    error: KafkaError | None = None


class Coordinator:
    """Answers UNSTABLE_OFFSET_COMMIT (no offset) for partition 0 `unstable` times, then the
    offsets; partition 1 has none committed."""

    def __init__(self, unstable: int) -> None:
        self.unstable = unstable
        self.asked = 0

    def committed(self, partitions: list[object], timeout: float) -> list[Answer]:
        self.asked += 1
        settled = self.asked > self.unstable
        first = (
            Answer("t", 0, 42)
            if settled
            else Answer("t", 0, -1001, KafkaError(KafkaError.UNSTABLE_OFFSET_COMMIT))
        )
        return [first, Answer("t", 1, -1001)]


def test_an_unstable_partition_is_asked_again_never_read_as_having_none() -> None:
    coordinator = Coordinator(unstable=2)
    offsets = asyncio.run(committed_offsets(coordinator, [("t", 0), ("t", 1)]))  # type: ignore[arg-type]
    assert offsets == {("t", 0): 42}
    assert coordinator.asked == 3
