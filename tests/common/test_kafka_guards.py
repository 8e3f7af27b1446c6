import asyncio
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from sales_common.kafka import (
    Outgoing,
    TransactionalProducer,
    call_in_thread,
    error_of,
    is_transient,
)
from sales_common.settings import KafkaSettings


def kafka(code: int, fatal: bool = False, retriable: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, "test", fatal=fatal, retriable=retriable))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (kafka(KafkaError._TIMED_OUT), True),
        (kafka(KafkaError._TRANSPORT), True),
        (kafka(KafkaError._ALL_BROKERS_DOWN), True),
        (kafka(KafkaError.NOT_COORDINATOR), True),
        (kafka(KafkaError.UNKNOWN_TOPIC_OR_PART, retriable=True), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        # A fenced producer stays fenced: retrying it is pointless.
        (kafka(KafkaError._FENCED, fatal=True), False),
        (kafka(KafkaError._TIMED_OUT, fatal=True), False),
        (kafka(KafkaError.TOPIC_AUTHORIZATION_FAILED), False),
        (ValueError("bug"), False),
    ],
)
def test_what_with_backoff_retries(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


async def test_a_blocking_call_is_given_up_after_its_limit_and_results_come_back() -> None:
    """librdkafka's transactional calls can block past their own timeout: the caller gives
    up at its limit (the call's thread is left behind), and results and errors come back."""
    stuck = threading.Event()
    with pytest.raises(TimeoutError):
        await call_in_thread(lambda: stuck.wait(5), 0.05)
    stuck.set()
    assert await call_in_thread(lambda: 42, 1.0) == 42
    with pytest.raises(KafkaException):
        await call_in_thread(lambda: (_ for _ in ()).throw(kafka(KafkaError._FAIL)), 1.0)


def test_eager_connections_and_linger_are_asked_for_per_producer() -> None:
    """Producers connect to every broker at once only when asked (the services' do:
    librdkafka's hidden enable.sparse.connections, which librdkafka must still know); only
    the validator's express lane overrides linger.ms."""
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    usual = settings.producer_config("t")
    eager = settings.producer_config("t", linger_ms=0, eager_connections=True)
    assert "enable.sparse.connections" not in usual
    assert usual["linger.ms"] == settings.producer_linger_ms
    assert (eager["enable.sparse.connections"], eager["linger.ms"]) == (False, 0)
    Producer(eager).close()  # refused with "No such configuration property" were it gone


def unreachable_producer(queued: int, timeout_ms: int) -> TransactionalProducer:
    """A producer whose queue holds `queued` records and never empties by itself."""
    return TransactionalProducer(
        {
            "bootstrap.servers": "127.0.0.1:1",
            "queue.buffering.max.messages": queued,
            "transaction.timeout.ms": timeout_ms,
            "log_level": 0,
        }
    )


async def test_send_all_queues_every_record_and_reports_the_first() -> None:
    producer = unreachable_producer(queued=10, timeout_ms=1000)
    reports: list[tuple[KafkaError | None, bytes | None]] = []
    records = [("t", b"k%d" % n, b"v%d" % n, [("h", b"1")]) for n in range(3)]
    assert await producer.send_all(records, first=lambda e, m: reports.append((e, m.value()))) == 3
    producer._producer.purge()  # undeliverable here: each report is served at once
    producer._producer.poll(0)
    assert [(error.code() if error else None, value) for error, value in reports] == [
        (KafkaError._PURGE_QUEUE, b"v0")
    ]


async def test_send_all_waits_for_room_then_gives_up_at_the_transaction_timeout() -> None:
    producer = unreachable_producer(queued=1, timeout_ms=1000)  # its least
    records: list[Outgoing] = [("t", b"k", b"v", []), ("t", b"k", b"v", [])]
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, producer._producer.purge)  # deliveries make room
    assert await producer.send_all(records) == 2
    started = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        await producer.send_all(records)
    assert error_of(raised.value).code() == KafkaError._QUEUE_FULL
    # Not at once: it waited as long as the transaction may live (1 s) for room first.
    assert time.monotonic() - started >= 1
