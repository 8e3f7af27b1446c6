import threading

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from sales_common.kafka import call_in_thread, is_transient
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
