"""A consumer whose group membership never settles is noticed (GroupWatch), from
librdkafka's statistics; a broker that is down, or a member idle in a settled group, is not."""

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, Gauge
from sales_common.consume import ConsumeLoop, GroupWatch, Position
from sales_common.observability import Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(state: str, join_state: str) -> dict[str, object]:
    return {"cgrp": {"state": state, "join_state": join_state, "assignment_size": 0}}


def test_a_join_that_never_settles_while_the_coordinator_answers_is_stuck() -> None:
    clock = Clock()
    watch = GroupWatch(60, clock)
    for second, join_state in enumerate(["init", "wait-join", "init", "wait-join"] * 16):
        clock.now = 100.0 + second
        watch.on_stats(stats("up", join_state))
    assert clock.now - 100 > 60
    assert watch.stuck()
    assert watch.state == "up/wait-join"


def test_a_rejoin_that_settles_in_time_is_not_stuck() -> None:
    clock = Clock()
    watch = GroupWatch(60, clock)
    watch.on_stats(stats("up", "wait-join"))
    clock.now += 59
    watch.on_stats(stats("up", "steady"))
    clock.now += 600  # settled ever since: a member with no partitions is fine too
    watch.on_stats(stats("up", "steady"))
    assert not watch.stuck()


def test_time_without_a_coordinator_does_not_count() -> None:
    clock = Clock()
    watch = GroupWatch(60, clock)
    watch.on_stats(stats("up", "init"))
    clock.now += 50
    watch.on_stats(stats("query-coord", "init"))  # the broker is down: a new consumer would wait
    clock.now += 300
    watch.on_stats(stats("up", "init"))  # back: the clock starts again
    clock.now += 30
    assert not watch.stuck()
    clock.now += 31
    assert watch.stuck()


def test_statistics_without_a_group_are_not_stuck() -> None:
    watch = GroupWatch(0, Clock())
    watch.on_stats({})
    assert not watch.stuck()


class Idle:
    async def handle(self, records: list[Message], consumer: Consumer) -> None:
        raise AssertionError("no records here")

    async def resume_offsets(self, partitions: list[Position]) -> None:
        return None

    async def close(self) -> None:
        pass


def never_settling_loop() -> ConsumeLoop:
    """A loop whose consumers count as stuck as soon as their join is not steady (no broker:
    the consumers are made, never connected)."""
    config = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "log_level": 0}
    lag = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    return ConsumeLoop("test", config, ["t"], Idle(), Heartbeat(), lag, 10, stuck_after_s=-1)


async def test_a_loop_gives_up_when_its_new_consumers_never_settle_either() -> None:
    loop = never_settling_loop()
    for replaced in range(1, 4):
        loop._watch.on_stats(stats("up", "wait-join"))
        loop._look_at_the_group()
        await loop._replace_consumer()
        assert loop.consumers_replaced == replaced
    loop._watch.on_stats(stats("up", "wait-join"))
    with pytest.raises(RuntimeError, match="never joined their group"):
        loop._look_at_the_group()
    await loop._close(loop._consumer)


async def test_a_consumer_that_settled_once_resets_the_count() -> None:
    loop = never_settling_loop()
    for _ in range(5):
        loop._watch.on_stats(stats("up", "steady"))  # settled: the count starts again
        loop._watch.on_stats(stats("up", "wait-join"))
        loop._look_at_the_group()
        await loop._replace_consumer()
    assert loop.consumers_replaced == 5
    await loop._close(loop._consumer)


class Unanswered:
    """A consumer whose group coordinator never answers: every committed() times out."""

    def __init__(self, partitions: list[TopicPartition]) -> None:
        self.partitions = partitions
        self.seeks: list[TopicPartition] = []
        self.asked = 0

    def assignment(self) -> list[TopicPartition]:
        return self.partitions

    def committed(self, partitions: list[TopicPartition], timeout: float) -> None:
        self.asked += 1
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets"))

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(partition)


async def test_a_rewind_the_coordinator_never_answers_gives_the_consumer_up() -> None:
    """Seen after a broker restart: a rewind's committed offsets timed out for minutes. It
    gives up after a bounded number of attempts, seeks nowhere, and the loop replaces its
    consumer before the next poll (the new one resumes at the committed offsets)."""
    loop = never_settling_loop()
    made = loop._consumer
    unanswered = Unanswered([TopicPartition("t", 0)])
    loop._consumer = unanswered  # type: ignore[assignment]
    await loop.rewind({("t", 0)})
    assert unanswered.asked == 5
    assert unanswered.seeks == []
    assert loop._replace
    await loop._close(made)
