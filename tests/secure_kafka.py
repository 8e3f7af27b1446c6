"""A second local broker for security tests: SASL_SSL with SCRAM users added at format
time, PEM keys from a CA the test generates, and optionally Kafka's StandardAuthorizer. It
runs on free ports and stops with the context."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack import kafka, processes
from devstack.config import StackConfig
from devstack.pipeline import free_port
from pydantic import SecretStr
from sales_common.settings import KafkaSettings, TopicSettings

from tests.pki import Pki, make_pki

ADMIN = "admin"


@dataclass(frozen=True)
class SecureBroker:
    port: int
    pki: Pki
    admin_password: str

    def settings(
        self,
        user: str,
        password: str,
        topics: TopicSettings | None = None,
        cafile: Path | None = None,
    ) -> KafkaSettings:
        """Client settings for `user`, trusting the test CA (or `cafile`)."""
        return KafkaSettings(
            bootstrap_servers=f"127.0.0.1:{self.port}",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username=user,
            sasl_password=SecretStr(password),
            ssl_cafile=str(cafile or self.pki.ca_cert),
            topics=topics or TopicSettings(),
        )

    def admin(self, topics: TopicSettings | None = None) -> KafkaSettings:
        """The super user (the only one allowed anything before ACLs exist)."""
        return self.settings(ADMIN, self.admin_password, topics)


@contextmanager
def secure_broker(
    work: Path, users: dict[str, str], authorizer: bool = False
) -> Iterator[SecureBroker]:
    """Start the broker in `work` with `users` (name -> password) and an admin."""
    pki = make_pki(work)
    keystore = work / "keystore.pem"  # PKCS#8 key, then the certificate chain
    keystore.write_text(pki.server_key_pkcs8.read_text() + pki.server_cert.read_text())
    config = StackConfig(kafka_port=free_port(), kafka_controller_port=free_port())
    admin_password = "admin-" + uuid.uuid4().hex
    properties = kafka.sasl_ssl_properties(
        config,
        work / "data",
        keystore,
        pki.ca_cert,
        (ADMIN, admin_password),
        authorizer=authorizer,
    )
    pid_file = work / "kafka.pid"
    scram = tuple(
        kafka.scram_user(name, secret) for name, secret in {ADMIN: admin_password, **users}.items()
    )
    kafka.launch(StackConfig(), work, properties, pid_file, scram_users=scram)
    try:
        processes.wait_until(
            lambda: kafka.is_listening(config.host, config.kafka_port), 90, "the SASL_SSL broker"
        )
        yield SecureBroker(config.kafka_port, pki, admin_password)
    finally:
        processes.stop(pid_file, timeout_s=30)
