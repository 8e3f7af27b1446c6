"""The principal/ACL table (sales_common.acls): who may write, read and join what."""

from __future__ import annotations

import pytest
from sales_common.acls import AclNames, AclSettings, Grant, binding, grant_of, table
from sales_common.settings import TopicSettings

TOPICS = TopicSettings()


def holders(operation: str, resource: str, name: str) -> set[str]:
    """The services granted `operation` on that literal resource."""
    return {
        service
        for service, grants in table(TOPICS).items()
        if Grant(resource, name, "literal", operation) in grants  # type: ignore[arg-type]
    }


def test_each_topic_has_one_writer_and_its_readers() -> None:
    for topic in (TOPICS.raw, TOPICS.raw_priority):
        assert holders("Write", "topic", topic) == {"ingest"}
        assert holders("Read", "topic", topic) == {"ingest", "validator"}
    for topic in (
        TOPICS.validated,
        TOPICS.rejected,
        TOPICS.validated_priority,
        TOPICS.rejected_priority,
    ):
        assert holders("Write", "topic", topic) == {"validator"}
        assert holders("Read", "topic", topic) == {"loader"}


def test_the_loader_writes_nothing_and_holds_no_transactional_id() -> None:
    loader = table(TOPICS)["loader"]
    assert {g.operation for g in loader} == {"Read"}
    assert {g.resource for g in loader} == {"topic", "group"}


def test_groups_and_transactional_ids_follow_the_configured_names() -> None:
    names = AclNames(
        validator_group_id="v1", validator_transactional_id_prefix="vt", loader_group_id="l1"
    )
    grants = table(TOPICS, names)
    groups = {s: {g.name for g in gs if g.resource == "group"} for s, gs in grants.items()}
    assert groups == {
        "ingest": {"ingest-outcome-"},
        "validator": {"v1", "v1.express"},
        "loader": {"l1", "l1.express"},
    }
    txn = {
        s: {(g.name, g.pattern) for g in gs if g.resource == "transactionalId"}
        for s, gs in grants.items()
    }
    assert txn == {
        "ingest": {("ingest-", "prefix")},
        "validator": {("vt-", "prefix")},
        "loader": set(),
    }


@pytest.mark.parametrize("service", ["ingest", "validator", "loader"])
def test_a_grant_survives_the_round_trip_through_a_kafka_acl(service: str) -> None:
    for grant in table(TOPICS)[service]:
        assert grant_of(binding(service, grant)) == grant


def test_the_tool_reads_its_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACLS_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("ACLS_NAMES__LOADER_GROUP_ID", "l2")
    monkeypatch.setenv("ACLS_PRINCIPALS__INGEST", "shop-ingest")
    monkeypatch.setenv("ACLS_PASSWORDS__LOADER", "p" * 32)
    settings = AclSettings()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.names.loader_group_id == "l2"
    assert settings.principals.ingest == "shop-ingest"
    assert settings.passwords.loader is not None
    assert settings.passwords.ingest is None
