"""Least privilege on Kafka: one principal per service and what each may do, the one table.

`table()` is the truth; `python -m sales_common.entrypoint acls` (compose's `acls` one-shot)
applies it to a broker with an authorizer, as a super user: SCRAM credentials for the
principals whose password it is given, then exactly these ACLs for them (one missing is
created, one no longer in the table is deleted). The chart's Strimzi `KafkaUser`s carry the
same ACLs; tests/deploy checks that both agree with this table, and
tests/integration/test_kafka_acls.py shows a broker refusing everything else.

Kafka implies DESCRIBE from READ and WRITE, and a transactional producer needs no cluster
IDEMPOTENT_WRITE (WRITE on its transactional id covers InitProducerId), so no grant below
names either.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from pydantic import BaseModel, Field, SecretStr

from sales_common.logging import get_logger
from sales_common.settings import KafkaSettings, ProcessSettings, TopicSettings

log = get_logger(__name__)

# ingest's transactional ids are "ingest-<upload id>" (ingest/publisher.py), and it reads
# sales.raw back, never joining nor committing, as group "ingest-outcome-<random>".
INGEST_TRANSACTIONAL_ID_PREFIX = "ingest-"
INGEST_OUTCOME_GROUP_PREFIX = "ingest-outcome-"

Resource = Literal["topic", "group", "transactionalId"]
Pattern = Literal["literal", "prefix"]
Operation = Literal["Read", "Write"]
PRINCIPALS = ("ingest", "validator", "loader")


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW `operation` on a resource, named exactly (`literal`) or by a `prefix`."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


class AclNames(BaseModel):
    """The consumer groups and transactional ids the services are configured with."""

    validator_group_id: str = "validator"
    validator_transactional_id_prefix: str = "validator"
    loader_group_id: str = "loader"


def _grants(
    resource: Resource, names: Iterable[str], operation: Operation, pattern: Pattern = "literal"
) -> set[Grant]:
    return {Grant(resource, name, pattern, operation) for name in names}


def table(topics: TopicSettings, names: AclNames | None = None) -> dict[str, frozenset[Grant]]:
    """Service -> everything its principal may do. Each lane is a consumer group of its own
    ("<group>" and "<group>.express"); the express twins are written and read like their
    main topics."""
    n = names or AclNames()
    raw = (topics.raw, topics.raw_priority)
    validated = (topics.validated, topics.validated_priority)
    rejected = (topics.rejected, topics.rejected_priority)
    ingest = (
        _grants("topic", raw, "Write")
        # RawPublisher.outcome(): was a fenced upload's transaction committed?
        | _grants("topic", raw, "Read")
        | _grants("group", [INGEST_OUTCOME_GROUP_PREFIX], "Read", "prefix")
        | _grants("transactionalId", [INGEST_TRANSACTIONAL_ID_PREFIX], "Write", "prefix")
    )
    validator = (
        _grants("topic", raw, "Read")
        | _grants("topic", validated + rejected, "Write")
        # Offsets are committed by its transactions (TxnOffsetCommit needs group READ).
        | _grants("group", [n.validator_group_id, f"{n.validator_group_id}.express"], "Read")
        | _grants("transactionalId", [f"{n.validator_transactional_id_prefix}-"], "Write", "prefix")
    )
    loader = _grants("topic", validated + rejected, "Read") | _grants(
        "group", [n.loader_group_id, f"{n.loader_group_id}.express"], "Read"
    )
    return {
        "ingest": frozenset(ingest),
        "validator": frozenset(validator),
        "loader": frozenset(loader),
    }


_RESOURCE_TYPES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_OPERATIONS = {"Read": AclOperation.READ, "Write": AclOperation.WRITE}


def binding(principal: str, grant: Grant) -> AclBinding:
    """The Kafka ACL for `grant` to SASL user `principal`, from any host."""
    return AclBinding(
        _RESOURCE_TYPES[grant.resource],
        grant.name,
        _PATTERNS[grant.pattern],
        f"User:{principal}",
        "*",
        _OPERATIONS[grant.operation],
        AclPermissionType.ALLOW,
    )


def grant_of(acl: AclBinding) -> Grant:
    """The grant an ALLOW ACL from any host expresses (the inverse of `binding`)."""
    if acl.host != "*" or acl.permission_type != AclPermissionType.ALLOW:
        raise ValueError(f"not a grant of this table: {acl}")
    resource = next(k for k, v in _RESOURCE_TYPES.items() if v == acl.restype)
    pattern = next(k for k, v in _PATTERNS.items() if v == acl.resource_pattern_type)
    operation = next(k for k, v in _OPERATIONS.items() if v == acl.operation)
    return Grant(resource, acl.name, pattern, operation)  # type: ignore[arg-type]


def _key(acl: AclBinding) -> tuple[Any, ...]:
    """Every field of an ACL, in AclBinding's (and AclBindingFilter's) argument order."""
    return (
        acl.restype,
        acl.name,
        acl.resource_pattern_type,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission_type,
    )


def acls_of(principal: str) -> AclBindingFilter:
    """Every ACL of `principal`, whatever the resource, host or operation."""
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name (librdkafka's NULL)
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]  # and any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _exactly(acl: AclBinding) -> AclBindingFilter:
    """A filter that matches `acl` and nothing else."""
    return AclBindingFilter(*_key(acl))


_CONVERGE_S = 30.0


async def apply_acls(admin: AdminClient, principal: str, grants: Iterable[Grant]) -> None:
    """Make `principal`'s ACLs exactly `grants`: create the missing, delete the others."""
    wanted = {_key(b): b for b in (binding(principal, g) for g in grants)}
    existing = await asyncio.wrap_future(admin.describe_acls(acls_of(principal)))
    have = {_key(b): b for b in existing}
    missing = [b for k, b in wanted.items() if k not in have]
    stale = [_exactly(b) for k, b in have.items() if k not in wanted]
    for future in admin.create_acls(missing).values() if missing else ():
        await asyncio.wrap_future(future)
    for future in admin.delete_acls(stale).values() if stale else ():
        await asyncio.wrap_future(future)
    # A broker applies ACL changes from its metadata log a moment after they are accepted:
    # done means the broker enforces them, so wait until it describes exactly these.
    deadline = time.monotonic() + _CONVERGE_S
    while {
        _key(b) for b in await asyncio.wrap_future(admin.describe_acls(acls_of(principal)))
    } != set(wanted):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker did not take {principal}'s ACLs in {_CONVERGE_S} s")
        await asyncio.sleep(0.1)
    log.info("acls_applied", principal=principal, added=len(missing), removed=len(stale))


async def upsert_scram(
    admin: AdminClient,
    user: str,
    password: SecretStr,
    mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-256",
    iterations: int = 8192,
) -> None:
    """Create or change `user`'s SCRAM credential (KRaft keeps it in the cluster metadata)."""
    info = ScramCredentialInfo(
        ScramMechanism.SCRAM_SHA_256
        if mechanism == "SCRAM-SHA-256"
        else ScramMechanism.SCRAM_SHA_512,
        iterations,
    )
    change = UserScramCredentialUpsertion(user, info, password.get_secret_value().encode())
    for future in admin.alter_user_scram_credentials([change]).values():
        await asyncio.wrap_future(future)
    log.info("scram_credential_set", user=user, mechanism=mechanism)


class Principals(BaseModel):
    """The SASL user name of each service."""

    ingest: str = "ingest"
    validator: str = "validator"
    loader: str = "loader"


class Passwords(BaseModel):
    """SCRAM passwords to set; a service left out keeps the credential it has."""

    ingest: SecretStr | None = None
    validator: SecretStr | None = None
    loader: SecretStr | None = None


class AclSettings(ProcessSettings):
    """`acls`' settings, prefix ACLS_: the admin's connection (a super user) in `kafka`."""

    model_config = ProcessSettings.model_config | {"env_prefix": "ACLS_"}

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    names: AclNames = Field(default_factory=AclNames)
    principals: Principals = Field(default_factory=Principals)
    passwords: Passwords = Field(default_factory=Passwords)
    scram_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-256"


async def apply(settings: AclSettings) -> None:
    """Every principal's credential (when given) and ACLs, as the table says."""
    admin = AdminClient(settings.kafka.client_config())
    grants = table(settings.kafka.topics, settings.names)
    for service in PRINCIPALS:
        user: str = getattr(settings.principals, service)
        password: SecretStr | None = getattr(settings.passwords, service)
        if password is not None:
            await upsert_scram(admin, user, password, settings.scram_mechanism)
        await apply_acls(admin, user, grants[service])


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    settings = AclSettings()
    settings.configure_logging("acls")
    try:
        asyncio.run(apply(settings))
    except KafkaException as exc:
        raise SystemExit(f"acls: {exc}") from exc


if __name__ == "__main__":
    main()
