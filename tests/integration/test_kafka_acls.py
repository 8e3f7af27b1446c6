"""Least privilege on Kafka: a broker with Kafka's StandardAuthorizer (nothing allowed without
an ACL), the principals and ACLs applied by the project's tool (sales_common.acls), then
each service doing its job as its own principal through the services' own client layer, and
every forbidden action refused by the broker with an authorization error."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from ingest.config import IngestSettings
from ingest.publisher import RawPublisher, transactional_id
from pydantic import SecretStr
from sales_common.acls import (
    INGEST_OUTCOME_GROUP_PREFIX,
    INGEST_TRANSACTIONAL_ID_PREFIX,
    AclNames,
    AclSettings,
    Grant,
    Passwords,
    acls_of,
    apply,
    grant_of,
    table,
)
from sales_common.events import encode
from sales_common.kafka import TransactionalProducer, ensure_topics, error_of
from sales_common.pii import EncryptionSettings, PiiSettings
from sales_common.settings import AuthSettings, KafkaSettings, TopicSettings
from validator.config import ValidatorSettings
from validator.main import create_app as create_validator

from tests.conftest import ENCRYPTION_KEY, JWT_SECRET, PII_KEY
from tests.helpers import eventually, serve
from tests.integration.test_validator import raw
from tests.secure_kafka import SecureBroker, secure_broker

pytestmark = pytest.mark.integration
PASSWORDS = {name: f"{name}-{uuid.uuid4().hex}" for name in ("ingest", "validator", "loader")}
TOPICS = TopicSettings()
NAMES = AclNames()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """Started with the admin alone: the ACL tool creates the services' SCRAM users."""
    with secure_broker(tmp_path_factory.mktemp("kafka-acls"), {}, authorizer=True) as running:
        settings = AclSettings(
            kafka=running.admin(TOPICS),
            names=NAMES,
            passwords=Passwords(**{k: SecretStr(v) for k, v in PASSWORDS.items()}),
            log_json=False,
        )
        asyncio.run(apply(settings))
        asyncio.run(ensure_topics(running.admin(TOPICS)))
        yield running


def as_(broker: SecureBroker, service: str) -> KafkaSettings:
    return broker.settings(service, PASSWORDS[service], TOPICS)


def refusal(exc: BaseException) -> str:
    assert isinstance(exc, KafkaException), repr(exc)
    return str(error_of(exc).name())


async def transaction(settings: KafkaSettings, txn_id: str, topic: str) -> set[str]:
    """One record to `topic` in one transaction, as the services produce; the names of the
    errors met (none: committed). A refused record makes the commit fail: the broker's
    reason comes with the commit or with the record's delivery report (librdkafka then
    names the other one _INCONSISTENT or _PURGE_QUEUE), so both are collected."""
    errors: set[str] = set()

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            errors.add(str(error.name()))

    producer = TransactionalProducer(settings.producer_config(txn_id, 10_000))
    try:
        await producer.start(15)
        producer.begin()
        await producer.send_all([(topic, b"k", b"v", [])], first=delivered)
        await producer.flush(15)
        await producer.commit(15)
    except KafkaException as exc:
        errors.add(refusal(exc))
    finally:
        await producer.close()
    return errors


async def first_error(consumer: Consumer, timeout_s: float = 20) -> KafkaError:
    """The first error the consumer reports (an authorization failure comes as one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in await asyncio.to_thread(consumer.consume, 10, 0.5):
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                return error
    raise AssertionError("the broker refused nothing")


async def read_as(settings: KafkaSettings, group: str, topics: list[str]) -> KafkaError:
    consumer = Consumer(settings.consumer_config(group))
    try:
        consumer.subscribe(topics)
        return await first_error(consumer)
    finally:
        await asyncio.to_thread(consumer.close)


async def on_broker(admin: AdminClient, principal: str) -> frozenset[Grant]:
    """The ACLs the broker holds for `principal`, as grants of the table."""
    found = await asyncio.wrap_future(admin.describe_acls(acls_of(principal)))
    return frozenset(grant_of(b) for b in found)


def ingest_settings(kafka: KafkaSettings) -> IngestSettings:
    return IngestSettings(
        kafka=kafka,
        auth=AuthSettings(jwt_secret=SecretStr(JWT_SECRET)),
        pii_encryption=EncryptionSettings(key=SecretStr(ENCRYPTION_KEY)),
    )


# The jobs: every service does what it must as its own principal.


async def test_the_pipeline_runs_with_each_service_as_its_own_principal(
    broker: SecureBroker,
) -> None:
    # ingest: one upload in one transaction (ingest-<upload id>), then RawPublisher.outcome()
    # reads it back read_committed in a throwaway "ingest-outcome-" group.
    publisher = RawPublisher(ingest_settings(as_(broker, "ingest")))
    upload = uuid.uuid4()
    rows = [
        raw(str(upload), 1, product="Halal Tea", price="2.50", quantity="2"),
        raw(str(upload), 2, product="Coffee", price="3.00", quantity="1"),
    ]
    probes: list[str] = []

    async def note(position: str) -> bool:
        probes.append(position)
        return True

    records = [(f"{upload}:{r.row_number}".encode(), encode(r)) for r in rows]
    await publisher.publish(upload, TOPICS.raw, records, 30, note)
    assert await publisher.outcome(probes[0]) == "committed"
    await publisher.close()

    # validator: the real service reads sales.raw in group "validator" and writes
    # sales.validated / sales.rejected in transactions that carry its offsets.
    validator = ValidatorSettings(
        kafka=as_(broker, "validator"),
        pii=PiiSettings(hmac_key=SecretStr(PII_KEY)),
        pii_encryption=EncryptionSettings(key=SecretStr(ENCRYPTION_KEY)),
        group_id=NAMES.validator_group_id,
        transactional_id_prefix=NAMES.validator_transactional_id_prefix,
        log_json=False,
    )
    loader = as_(broker, "loader")
    consumer = Consumer(loader.consumer_config(NAMES.loader_group_id))
    seen: list[Message] = []
    try:
        async with serve(create_validator(validator)):
            # loader: reads both topics in group "loader" and commits its offsets.
            consumer.subscribe([TOPICS.validated, TOPICS.rejected])

            async def poll() -> int:
                for message in await asyncio.to_thread(consumer.consume, 10, 0.5):
                    assert message.error() is None, message.error()
                    seen.append(message)
                return len(seen)

            await eventually(poll, lambda n: n >= 2, 60, "the validator's two outputs")
        # As the loader commits (for lag tools): the next offset of each record read.
        offsets = [
            TopicPartition(m.topic() or "", m.partition() or 0, (m.offset() or 0) + 1) for m in seen
        ]
        consumer.commit(offsets=offsets, asynchronous=False)
        committed = await asyncio.to_thread(consumer.committed, offsets, 10)
    finally:
        await asyncio.to_thread(consumer.close)
    assert sorted(m.topic() or "" for m in seen) == [TOPICS.rejected, TOPICS.validated]
    assert sorted((tp.topic, tp.offset) for tp in committed) == sorted(
        (tp.topic, tp.offset) for tp in offsets
    )


async def test_the_acl_tool_converges(broker: SecureBroker) -> None:
    """Run again it changes nothing; an ACL the table does not hold is deleted."""
    admin = AdminClient(broker.admin(TOPICS).client_config())
    stray = AclBinding(
        ResourceType.TOPIC,
        TOPICS.raw,
        ResourcePatternType.LITERAL,
        "User:loader",
        "*",
        AclOperation.READ,
        AclPermissionType.ALLOW,
    )
    for future in admin.create_acls([stray]).values():
        await asyncio.wrap_future(future)
    await apply(AclSettings(kafka=broker.admin(TOPICS), names=NAMES, log_json=False))
    refused = await transaction(as_(broker, "loader"), "loader-x", TOPICS.raw)
    assert refused == {"TRANSACTIONAL_ID_AUTHORIZATION_FAILED"}
    error = await read_as(as_(broker, "loader"), NAMES.loader_group_id, [TOPICS.raw])
    assert error.name() == "TOPIC_AUTHORIZATION_FAILED"
    for service, grants in table(TOPICS, NAMES).items():
        assert await on_broker(admin, service) == grants, service


# The refusals: each forbidden action, and the broker's error.


@pytest.mark.parametrize(
    ("service", "txn_id", "topic"),
    [
        ("ingest", "ingest-forbidden", TOPICS.validated),
        ("ingest", "ingest-forbidden", TOPICS.rejected),
        ("validator", "validator-main-forbidden", TOPICS.raw),
        ("validator", "validator-main-forbidden", TOPICS.raw_priority),
    ],
)
async def test_writing_another_services_topic_is_refused(
    broker: SecureBroker, service: str, txn_id: str, topic: str
) -> None:
    assert "TOPIC_AUTHORIZATION_FAILED" in await transaction(as_(broker, service), txn_id, topic)


@pytest.mark.parametrize(
    ("service", "txn_id"),
    [
        ("ingest", "validator-main-forbidden"),
        ("validator", f"ingest-{uuid.uuid4()}"),
        ("loader", "loader-forbidden"),
        ("loader", f"ingest-{uuid.uuid4()}"),
    ],
)
async def test_another_services_transactional_id_is_refused(
    broker: SecureBroker, service: str, txn_id: str
) -> None:
    settings = as_(broker, service)
    allowed = settings.topics.raw if service == "ingest" else settings.topics.validated
    assert await transaction(settings, txn_id, allowed) == {"TRANSACTIONAL_ID_AUTHORIZATION_FAILED"}


async def test_the_loader_writes_nothing_even_without_a_transaction(broker: SecureBroker) -> None:
    producer = Producer(as_(broker, "loader").client_config())
    reports: list[KafkaError | None] = []
    try:
        for topic in (TOPICS.raw, TOPICS.validated, TOPICS.rejected):
            producer.produce(topic, b"v", on_delivery=lambda error, _: reports.append(error))
        await asyncio.to_thread(producer.flush, 20)
    finally:
        await asyncio.to_thread(producer.close)
    assert [e.name() if e else None for e in reports] == ["TOPIC_AUTHORIZATION_FAILED"] * 3


@pytest.mark.parametrize(
    ("service", "group", "topic"),
    [
        ("ingest", f"{INGEST_OUTCOME_GROUP_PREFIX}x", TOPICS.validated),
        ("loader", NAMES.loader_group_id, TOPICS.raw),
        ("validator", NAMES.validator_group_id, TOPICS.validated),
    ],
)
async def test_reading_another_services_topic_is_refused(
    broker: SecureBroker, service: str, group: str, topic: str
) -> None:
    error = await read_as(as_(broker, service), group, [topic])
    assert error.name() == "TOPIC_AUTHORIZATION_FAILED"


async def test_ingest_reading_validated_by_assignment_is_refused(broker: SecureBroker) -> None:
    """As RawPublisher.outcome() reads, by assign() without a subscription: the broker
    refuses the topic's metadata, so librdkafka fetches nothing from it."""
    settings = as_(broker, "ingest")
    consumer = Consumer(settings.consumer_config(f"{INGEST_OUTCOME_GROUP_PREFIX}{uuid.uuid4()}"))
    partition = TopicPartition(TOPICS.validated, 0, 0)
    try:
        metadata = await asyncio.to_thread(consumer.list_topics, TOPICS.validated, 10)
        consumer.assign([partition])
        fetched = await asyncio.to_thread(consumer.consume, 10, 3)
    finally:
        await asyncio.to_thread(consumer.close)
    assert metadata.topics[TOPICS.validated].error.name() == "TOPIC_AUTHORIZATION_FAILED"
    assert [m for m in fetched if m.error() is None] == []


@pytest.mark.parametrize(
    ("service", "group", "topic"),
    [
        ("loader", NAMES.validator_group_id, TOPICS.validated),
        ("validator", NAMES.loader_group_id, TOPICS.raw),
        ("ingest", NAMES.validator_group_id, TOPICS.raw),
        ("validator", f"{INGEST_OUTCOME_GROUP_PREFIX}x", TOPICS.raw),
    ],
)
async def test_another_services_consumer_group_is_refused(
    broker: SecureBroker, service: str, group: str, topic: str
) -> None:
    error = await read_as(as_(broker, service), group, [topic])
    assert error.name() == "GROUP_AUTHORIZATION_FAILED"


async def test_validator_offsets_for_another_group_are_refused(broker: SecureBroker) -> None:
    """send_offsets_to_transaction on the loader's group: the transaction cannot commit."""
    settings = as_(broker, "validator")
    consumer = Consumer(settings.consumer_config(NAMES.loader_group_id))
    producer = TransactionalProducer(settings.producer_config("validator-main-offsets", 10_000))
    try:
        await producer.start(15)
        producer.begin()
        await producer.send_all([(TOPICS.validated, b"k", b"v", [])])
        with pytest.raises(KafkaException) as refused:
            await producer.commit(
                15, [TopicPartition(TOPICS.raw, 0, 0)], consumer.consumer_group_metadata()
            )
        await producer.abort(10)
    finally:
        await producer.close()
        await asyncio.to_thread(consumer.close)
    assert refusal(refused.value) == "GROUP_AUTHORIZATION_FAILED"


@pytest.mark.parametrize("service", ["ingest", "validator", "loader"])
async def test_no_service_may_create_topics(broker: SecureBroker, service: str) -> None:
    settings = as_(broker, service)
    doomed = TopicSettings(raw=f"s{uuid.uuid4().hex[:8]}.raw")
    with pytest.raises(KafkaException) as refused:
        await ensure_topics(settings.model_copy(update={"topics": doomed}))
    assert refusal(refused.value) == "TOPIC_AUTHORIZATION_FAILED"


def test_ingest_transactional_ids_carry_the_granted_prefix() -> None:
    assert transactional_id(uuid.uuid4()).startswith(INGEST_TRANSACTIONAL_ID_PREFIX)
