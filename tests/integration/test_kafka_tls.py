"""Kafka over TLS with SASL/SCRAM: a second local broker with a SASL_SSL listener, PEM keys
from a CA this test generates, SCRAM users added when its storage is formatted
(tests/secure_kafka.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from sales_common.kafka import KafkaProbe, ensure_topics
from sales_common.settings import KafkaSettings, TopicSettings

from tests.helpers import consume, produce
from tests.pki import make_pki
from tests.secure_kafka import SecureBroker, secure_broker

pytestmark = pytest.mark.integration
USER, PASSWORD = "sales", "sales-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    with secure_broker(tmp_path_factory.mktemp("kafka-tls"), {USER: PASSWORD}) as running:
        yield running


def settings(broker: SecureBroker, password: str, cafile: Path | None = None) -> KafkaSettings:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(
        raw=f"s{suffix}.raw", validated=f"s{suffix}.validated", rejected=f"s{suffix}.rejected"
    )
    return broker.settings(USER, password, topics, cafile)


async def test_produce_and_consume_over_sasl_ssl(broker: SecureBroker) -> None:
    good = settings(broker, PASSWORD)
    await ensure_topics(good)
    await produce(good, good.topics.raw, [(b"k", b"over TLS")])
    records = await consume(good, good.topics.raw, expected=1)
    assert [r.value for r in records] == [b"over TLS"]
    probe = KafkaProbe(good)
    try:
        await probe.check()
    finally:
        await probe.close()


async def test_wrong_password_is_refused(broker: SecureBroker) -> None:
    probe = KafkaProbe(settings(broker, "wrong-password"))
    with pytest.raises(KafkaException):
        await probe.check()


async def test_untrusted_server_certificate_is_refused(
    broker: SecureBroker, tmp_path: Path
) -> None:
    stranger = make_pki(tmp_path)
    probe = KafkaProbe(settings(broker, PASSWORD, stranger.ca_cert))
    with pytest.raises(KafkaException):
        await probe.check()
