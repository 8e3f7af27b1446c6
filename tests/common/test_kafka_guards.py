import pytest
from confluent_kafka import KafkaError, KafkaException
from sales_common.kafka import is_transient


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
