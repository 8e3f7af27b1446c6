"""The one consume loop of the services: poll a batch, hand it over, let the handler write
its output and offsets together, repeat.

The handler owns what "durably processed" means (a Kafka transaction for the validator, a
PostgreSQL transaction for the loader) and where a partition resumes; the loop owns the
consumer, the group's rebalances and the rule for a batch that straddles one.

Rebalances. librdkafka runs the assignment callbacks inside `consume()`, in the worker
thread that calls it, so they never overlap a batch being handled. But one `consume()`
call may return records fetched before a rebalance it ran (confluent-kafka-python #1013):
such a batch is dropped and the partitions it touched are rewound to where the handler
says they resume. Dropping alone would skip records; handling it would duplicate them.

Where a partition starts. For a handler that keeps its offsets in Kafka (the validator's
transactions commit them) librdkafka starts each assigned partition at its committed
offset, asking for stable offsets: while a transaction that carries them is open (a
validator killed mid-batch leaves one until the broker aborts it) it retries
UNSTABLE_OFFSET_COMMIT, but only while the assignment does not change: after a rebalance,
the old fetch's reply is taken for the new one's and the partition starts at
`auto.offset.reset`, its beginning (seen in the fault suite: a raw partition's committed
batches validated again). So the first batch of each partition after an assignment is
checked against the stable committed offset, read by a second client of the group that
never joins it; a batch that starts before it is dropped and the partition rewound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import Gauge

from sales_common.kafka import call_in_thread, with_backoff
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat

log = get_logger(__name__)
T = TypeVar("T")
# Attempts of a rewind to read committed offsets (each up to 10 s, with backoff between:
# about a minute) before the loop gives its consumer up for a new one.
_REWIND_ATTEMPTS = 5
Position = tuple[str, int]  # topic, partition


class RetryBatch(Exception):
    """Raised by a handler whose batch was not stored (and left nothing behind): the loop
    rewinds the batch's partitions, so the records come again."""


class BatchHandler(Protocol):
    async def handle(self, records: list[Message], consumer: Consumer) -> None:
        """Process one batch: its output and its offsets durably together, or raise
        RetryBatch. `consumer` gives the group metadata a Kafka transaction needs."""
        ...

    async def resume_offsets(self, partitions: list[Position]) -> dict[Position, int] | None:
        """The offset each partition resumes at after a rebalance or a failed batch; None:
        the group's offsets committed to Kafka (by a transaction, for the validator)."""
        ...

    async def close(self) -> None:
        """After the loop's last batch."""
        ...


async def committed_offsets(
    consumer: Consumer, partitions: list[Position], attempts: int | None = None
) -> dict[Position, int]:
    """The group's offsets committed to Kafka; a partition without one is absent.

    Reading committed, librdkafka asks for stable offsets (KIP-447's require_stable): while a
    transaction that carries a partition's offsets is not settled, the broker answers
    UNSTABLE_OFFSET_COMMIT. librdkafka retries that request twice (RD_KAFKA_REQUEST_MAX_RETRIES)
    and may then hand the error back on the partition, with no offset. Such a partition has
    an offset nobody knows yet, not none: read as none, a rewind would send it to its
    beginning and validate its committed batches again (the likely cause of a fault-test run
    that found a partition's first events three times in sales.validated). It is asked
    again until known.
    """
    if not partitions:
        return {}

    def fetch() -> list[TopicPartition]:
        committed = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        for tp in committed:
            if tp.error is not None:
                raise KafkaException(
                    KafkaError(
                        tp.error.code(),
                        f"committed offset of {tp.topic}/{tp.partition}: {tp.error.str()}",
                        retriable=True,
                    )
                )
        return committed

    committed = await with_backoff(
        lambda: asyncio.to_thread(fetch), "committed offsets", attempts=attempts
    )
    return {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}


class LagGauge:
    """Consumer lag per partition from librdkafka's statistics (every
    `statistics.interval.ms`), so measuring it costs the loop nothing.

    Lag = end of the partition (last stable offset under read_committed) - the position
    handed to the application.
    """

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    def on_stats(self, stats: dict[str, Any]) -> None:
        for topic, topic_stats in stats.get("topics", {}).items():
            for partition, p in topic_stats.get("partitions", {}).items():
                if partition == "-1" or not p.get("desired"):
                    continue
                position = p["app_offset"] if p["app_offset"] >= 0 else p["committed_offset"]
                end = p["ls_offset"] if p["ls_offset"] >= 0 else p["hi_offset"]
                if position >= 0 and end >= 0:
                    self._gauge.labels(topic=topic, partition=partition).set(max(end - position, 0))

    def forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            with contextlib.suppress(KeyError):
                self._gauge.remove(tp.topic, str(tp.partition))


# How long closing a consumer may take (it commits nothing: the handlers own the offsets).
_CLOSE_LIMIT_S = 30.0
# New consumers in a row that never settle before the loop gives up and the process exits.
_REPLACEMENTS_UNSETTLED = 3


class GroupWatch:
    """Whether the consumer's group membership settles, from librdkafka's statistics.

    After a broker restart librdkafka rejoins the group by itself: its join state leaves
    `steady` and comes back within seconds (up to ~30 s here). Twice in ~30 restarts a
    lane's consumer never got partitions again, while polling and with the coordinator
    up (confluent-kafka-python #1305 reports the same); the upload it had to carry never
    completed. `stuck()`: the coordinator has answered ("up") but the join has not been
    steady for `stuck_after_s`. While the coordinator is unknown (a broker down) nothing is
    counted: a new consumer would not join sooner.
    """

    def __init__(self, stuck_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stuck_after_s = stuck_after_s
        self._clock = clock
        self._unsettled_since: float | None = None
        self.state = "init"  # the group's state and join state, for the log
        self.settled = False  # the join has been steady at least once

    def on_stats(self, stats: dict[str, Any]) -> None:
        group = stats.get("cgrp") or {}
        state, join_state = group.get("state", ""), group.get("join_state", "")
        self.state = f"{state}/{join_state}"
        self.settled = self.settled or join_state == "steady"
        if state == "up" and join_state != "steady":
            if self._unsettled_since is None:
                self._unsettled_since = self._clock()
        else:
            self._unsettled_since = None

    def stuck(self) -> bool:
        since = self._unsettled_since
        return since is not None and self._clock() - since > self._stuck_after_s


def _fetch(consumer: Consumer, max_records: int, timeout_s: float) -> list[Message]:
    """Up to `max_records`, returned as soon as there is one. librdkafka's consume(n, t)
    waits until it has n records or t ran out, which held a small upload's rows for the
    whole timeout at each hop; poll() returns the first record when it arrives, and
    consume(n, 0) adds what is queued behind it without waiting."""
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]


class ConsumeLoop:
    """Consume `topics` as a member of `config`'s group and feed `handler`, batch by batch."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        topics: list[str],
        handler: BatchHandler,
        heartbeat: Heartbeat,
        lag: Gauge,
        max_records: int,
        poll_timeout_s: float = 0.5,
        stuck_after_s: float = 60.0,
    ) -> None:
        self.name = name
        self._topics = topics
        self._handler = handler
        self._heartbeat = heartbeat
        self._max_records = max_records
        self._poll_timeout_s = poll_timeout_s
        self._lag = LagGauge(lag)
        self._config = config
        self._stuck_after_s = stuck_after_s
        self._watch = GroupWatch(stuck_after_s)
        self._consumer = self._new_consumer()
        self._replace = False
        self.consumers_replaced = 0
        self._replaced_unsettled = 0  # replacements in a row whose consumer never settled
        self._unassigned_since: float | None = time.monotonic()
        self._stopping = asyncio.Event()
        self._epoch = 0  # bumped by every assignment change
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kafka_offsets = False  # the handler's offsets are Kafka's committed ones
        self._checked: tuple[int, set[Position]] = (0, set())  # started where committed
        self._reader: Consumer | None = None  # reads committed offsets beside the member

    def stop(self) -> None:
        self._stopping.set()

    def _new_consumer(self) -> Consumer:
        """A consumer with a GroupWatch of its own: a retired consumer's statistics (it may
        take a while to close) never reach its successor's."""
        watch = self._watch = GroupWatch(self._stuck_after_s)

        def on_stats(stats_json: str) -> None:
            if watch is self._watch:
                stats = json.loads(stats_json)
                self._lag.on_stats(stats)
                watch.on_stats(stats)

        return Consumer({**self._config, "stats_cb": on_stats})

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            self._topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    def replace_consumer(self) -> None:
        """Have the loop leave the group and join it again with a new consumer before its
        next poll (as it does by itself when GroupWatch finds it stuck)."""
        self._replace = True

    async def _replace_consumer(self) -> None:
        """Between batches only: the handler has nothing in flight and no thread is inside
        the old consumer; the new one resumes where the handler says, as after any
        rebalance."""
        self._replace = False
        self.consumers_replaced += 1
        old, self._consumer = self._consumer, self._new_consumer()
        await self._close(old)
        self._subscribe()

    async def _close(self, consumer: Consumer) -> None:
        """Leave the group; bounded: a consumer that cannot leave it must not hold the lane
        (or the process's shutdown)."""
        try:
            await call_in_thread(consumer.close, _CLOSE_LIMIT_S)
        except TimeoutError:
            log.error("consumer_close_timed_out", loop=self.name, after_s=_CLOSE_LIMIT_S)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._subscribe()
        polling: asyncio.Future[list[Message]] | None = None
        try:
            while not self._stopping.is_set():
                self._heartbeat.beat()
                self._look_at_the_group()
                if self._replace:
                    await self._replace_consumer()
                consumer = self._consumer
                epoch = self._epoch
                polling = asyncio.ensure_future(
                    asyncio.to_thread(_fetch, consumer, self._max_records, self._poll_timeout_s)
                )
                messages = await polling
                records = self._records(messages)
                if self._epoch != epoch:
                    await self.rewind({(m.topic() or "", m.partition() or 0) for m in records})
                    continue
                if not records or not await self._started_where_committed(records):
                    continue
                try:
                    await self._handler.handle(records, consumer)
                except RetryBatch:
                    await self.rewind({(m.topic() or "", m.partition() or 0) for m in records})
        finally:
            if polling is not None and not polling.done():
                # The consumer must not be closed while another thread is inside it.
                await asyncio.wait([polling])
            await self._close(self._consumer)  # leaves the group at once
            if self._reader is not None:
                await self._close(self._reader)
            await self._handler.close()

    def _look_at_the_group(self) -> None:
        """Replace a consumer whose group join never settles (GroupWatch); give up, so that
        the process is restarted, when its successors do not settle either. Say when the
        lane has had no partitions for long: a member idle in a settled group is normal
        (more members than partitions), but it is what a lane left out looks like too."""
        watch = self._watch
        if watch.settled:
            self._replaced_unsettled = 0
        if watch.stuck():
            if self._replaced_unsettled >= _REPLACEMENTS_UNSETTLED:
                raise RuntimeError(
                    f"{self.name}: {_REPLACEMENTS_UNSETTLED} new consumers in a row never "
                    f"joined their group ({watch.state})"
                )
            log.error("consumer_stuck", loop=self.name, group=watch.state)
            self._replaced_unsettled += 1
            self._replace = True
        since = self._unassigned_since
        if since is not None and time.monotonic() - since > self._stuck_after_s:
            log.warning("lane_without_partitions", loop=self.name, group=watch.state)
            self._unassigned_since = None  # once per spell

    def _records(self, messages: list[Message]) -> list[Message]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.fatal():
                raise RuntimeError(f"{self.name}: fatal consumer error {error}")
            else:  # informational: librdkafka retries by itself
                log.warning("consumer_error", loop=self.name, error=str(error)[:200])
        return records

    async def rewind(self, partitions: set[Position]) -> None:
        """Position `partitions` (those still assigned) where their processing resumes."""
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        targets = sorted(partitions & owned)
        if not targets:
            return
        offsets = await self._handler.resume_offsets(targets)
        if offsets is None:
            try:
                offsets = await committed_offsets(self._consumer, targets, _REWIND_ATTEMPTS)
            except KafkaException as exc:
                # The coordinator never answers this consumer (seen after a broker restart:
                # every attempt timed out for minutes). Nothing was polled since the batch was
                # dropped, so a new consumer, before the next poll, resumes these partitions
                # at their committed offsets, as after any rebalance.
                log.warning("rewind_failed", loop=self.name, error=str(exc)[:200])
                self._replace = True
                return
        for topic, partition in targets:
            offset = offsets.get((topic, partition), OFFSET_BEGINNING)
            self._consumer.seek(TopicPartition(topic, partition, offset))
        log.info(
            "rewound",
            loop=self.name,
            partitions=[f"{t}/{p}@{offsets.get((t, p), 'beginning')}" for t, p in targets],
        )

    async def _started_where_committed(self, records: list[Message]) -> bool:
        """False (the batch dropped, its partitions rewound) when a partition's first batch
        since its assignment starts before the group's stable committed offset (module
        docstring). Between polls: no assignment changes meanwhile."""
        if not self._kafka_offsets:
            return True
        first: dict[Position, int] = {}
        for record in records:
            first.setdefault((record.topic() or "", record.partition() or 0), record.offset() or 0)
        if self._checked[0] != self._epoch:
            self._checked = (self._epoch, set())
        unchecked = [position for position in first if position not in self._checked[1]]
        if not unchecked:
            return True
        try:
            committed = await committed_offsets(self._offsets_reader(), unchecked, _REWIND_ATTEMPTS)
        except KafkaException as exc:
            log.warning("committed_check_failed", loop=self.name, error=str(exc)[:200])
            self._replace = True  # as after a failed rewind: nothing handled, a new consumer
            return False
        early = [p for p in unchecked if first[p] < committed.get(p, -1)]
        if early:
            log.warning(
                "started_before_committed",
                loop=self.name,
                partitions=[f"{t}/{p}@{first[(t, p)]}<{committed[(t, p)]}" for t, p in early],
            )
            await self.rewind(set(first))
            return False
        self._checked[1].update(unchecked)
        return True

    def _offsets_reader(self) -> Consumer:
        """A client of the group that never joins it: its offset fetches (which wait for open
        transactions) answer whatever the member's rebalances are doing."""
        if self._reader is None:
            self._reader = Consumer({**self._config, "statistics.interval.ms": 0})
        return self._reader

    # Called by librdkafka inside consume(), in its worker thread.
    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._epoch += 1
        self._unassigned_since = None if partitions else time.monotonic()
        wanted = [(tp.topic, tp.partition) for tp in partitions]
        offsets = self._on_loop(self._handler.resume_offsets(wanted))
        self._kafka_offsets = offsets is None
        if offsets is not None:  # else librdkafka starts at the committed offsets itself
            for tp in partitions:
                # Not stored yet: the beginning. The handler's store decides, not Kafka's
                # committed offset (which only serves lag tools then).
                tp.offset = offsets.get((tp.topic, tp.partition), OFFSET_BEGINNING)
            consumer.assign(partitions)
        log.info("partitions_assigned", loop=self.name, partitions=[f"{t}/{p}" for t, p in wanted])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._epoch += 1
        self._unassigned_since = time.monotonic()
        self._lag.forget(partitions)
        log.info(
            "partitions_revoked",
            loop=self.name,
            partitions=[f"{tp.topic}/{tp.partition}" for tp in partitions],
        )

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


class Lanes:
    """Loops that run side by side in one service (the main and the express lane), with
    the `run`/`stop` of one: if one dies, the others stop and the error propagates."""

    def __init__(self, *loops: ConsumeLoop) -> None:
        self._loops = loops

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()

    async def run(self) -> None:
        tasks = [asyncio.create_task(loop.run(), name=loop.name) for loop in self._loops]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            self.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
