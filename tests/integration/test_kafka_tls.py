"""Kafka over TLS with SASL/SCRAM: a second local broker with a SASL_SSL listener, PEM keys
from a CA this test generates, SCRAM users added when its storage is formatted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from devstack import kafka, processes
from devstack.config import StackConfig
from devstack.pipeline import free_port
from pydantic import SecretStr
from sales_common.kafka import KafkaProbe, ensure_topics
from sales_common.settings import KafkaSettings, TopicSettings

from tests.helpers import consume, produce
from tests.pki import Pki, make_pki

pytestmark = pytest.mark.integration
USER, PASSWORD = "sales", "sales-" + uuid.uuid4().hex
ADMIN, ADMIN_PASSWORD = "admin", "admin-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Pki]]:
    work = tmp_path_factory.mktemp("kafka-tls")
    pki = make_pki(work)
    keystore = work / "keystore.pem"  # PKCS#8 key, then the certificate chain
    keystore.write_text(pki.server_key_pkcs8.read_text() + pki.server_cert.read_text())
    port, controller = free_port(), free_port()
    host = "127.0.0.1"
    config = StackConfig(kafka_port=port, kafka_controller_port=controller)
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{ADMIN_PASSWORD}";'
    )
    properties = kafka.server_properties(
        config,
        work / "data",
        {
            "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"SASL_SSL://{host}:{port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca_cert),
            "ssl.endpoint.identification.algorithm": "",
        },
    )
    pid_file = work / "kafka.pid"
    users = tuple(
        f"SCRAM-SHA-256=[name={name},password={secret}]"
        for name, secret in ((ADMIN, ADMIN_PASSWORD), (USER, PASSWORD))
    )
    kafka.launch(StackConfig(), work, properties, pid_file, scram_users=users)
    try:
        processes.wait_until(lambda: kafka.is_listening(host, port), 90, "the TLS broker")
        yield port, pki
    finally:
        processes.stop(pid_file, timeout_s=30)


def settings(port: int, pki: Pki, password: str) -> KafkaSettings:
    suffix = uuid.uuid4().hex[:8]
    return KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=USER,
        sasl_password=SecretStr(password),
        ssl_cafile=str(pki.ca_cert),
        topics=TopicSettings(
            raw=f"s{suffix}.raw", validated=f"s{suffix}.validated", rejected=f"s{suffix}.rejected"
        ),
    )


async def test_produce_and_consume_over_sasl_ssl(secure_broker: tuple[int, Pki]) -> None:
    port, pki = secure_broker
    good = settings(port, pki, PASSWORD)
    await ensure_topics(good)
    await produce(good, good.topics.raw, [(b"k", b"over TLS")])
    records = await consume(good, good.topics.raw, expected=1)
    assert [r.value for r in records] == [b"over TLS"]
    probe = KafkaProbe(good)
    try:
        await probe.check()
    finally:
        await probe.close()


async def test_wrong_password_is_refused(secure_broker: tuple[int, Pki]) -> None:
    port, pki = secure_broker
    probe = KafkaProbe(settings(port, pki, "wrong-password"))
    with pytest.raises(KafkaException):
        await probe.check()


async def test_untrusted_server_certificate_is_refused(
    secure_broker: tuple[int, Pki], tmp_path: Path
) -> None:
    port, _ = secure_broker
    stranger = make_pki(tmp_path)
    probe = KafkaProbe(settings(port, stranger, PASSWORD))
    with pytest.raises(KafkaException):
        await probe.check()
