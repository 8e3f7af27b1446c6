"""Real infrastructure for integration and end-to-end tests.

The broker and database are found, in this order:
1. KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL from the environment (DATABASE_URL must be
   allowed to CREATE DATABASE);
2. local processes started by the dev-stack tool (Java + Maven, PostgreSQL binaries);
3. testcontainers, when a Docker engine answers.
Each test gets its own topics, consumer groups and database.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from devstack.pipeline import (
    Infrastructure,
    RunningPipeline,
    create_database,
    delete_topics,
    drop_database,
)
from pydantic import SecretStr
from sales_common.kafka import ensure_topics
from sales_common.pii import EncryptionSettings, PiiSettings
from sales_common.settings import AuthSettings, KafkaSettings, PostgresSettings, TopicSettings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
ARTIFACTS = REPO / "test-artifacts"
JWT_SECRET = "test-jwt-secret-" + "x" * 32
PII_KEY = "test-pii-hmac-key-" + "y" * 32
ENCRYPTION_KEY = "test-pii-encryption-key-" + "z" * 32


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    dsn = os.environ.get("DATABASE_URL")
    if bootstrap and dsn:
        yield Infrastructure(bootstrap, dsn)
        return
    if shutil.which("java") and (
        shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    ):
        from devstack import kafka, postgres
        from devstack.config import StackConfig
        from devstack.secrets import load_or_create

        config = StackConfig()
        secrets = load_or_create(config.secrets_file)
        kafka.start(config)
        postgres.start(config, secrets.postgres_password)
        yield Infrastructure(config.bootstrap_servers, postgres.superuser_dsn(config), config)
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            KafkaContainer().with_kraft() as kafka_container,
            PostgresContainer("postgres:16") as pg,
        ):
            url = pg.get_connection_url().replace("postgresql+psycopg2", "postgresql")
            yield Infrastructure(kafka_container.get_bootstrap_server(), url)
        return
    pytest.skip(
        "no Kafka/PostgreSQL: set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL,"
        " install Java and PostgreSQL, or run Docker"
    )


@pytest.fixture
def topics() -> TopicSettings:
    suffix = uuid.uuid4().hex[:10]
    return TopicSettings(
        raw=f"t{suffix}.raw", validated=f"t{suffix}.validated", rejected=f"t{suffix}.rejected"
    )


@pytest.fixture
async def kafka_settings(
    infrastructure: Infrastructure, topics: TopicSettings
) -> AsyncIterator[KafkaSettings]:
    settings = KafkaSettings(bootstrap_servers=infrastructure.bootstrap_servers, topics=topics)
    await ensure_topics(settings, partitions={"raw": 3, "validated": 3, "rejected": 2})
    yield settings
    await delete_topics(settings)


@pytest.fixture
async def database(infrastructure: Infrastructure) -> AsyncIterator[str]:
    """A fresh, migrated database; its URL."""
    url = await create_database(infrastructure.admin_dsn)
    yield url
    await drop_database(infrastructure.admin_dsn, url)


@pytest.fixture
def postgres_settings(database: str) -> PostgresSettings:
    return PostgresSettings(dsn=SecretStr(database))


@pytest.fixture
def auth_settings() -> AuthSettings:
    return AuthSettings(jwt_secret=SecretStr(JWT_SECRET))


@pytest.fixture
def pii_settings() -> PiiSettings:
    return PiiSettings(hmac_key=SecretStr(PII_KEY), key_id="test")


@pytest.fixture
def encryption_settings() -> EncryptionSettings:
    return EncryptionSettings(key=SecretStr(ENCRYPTION_KEY), key_id="e-test")


@pytest.fixture
def pipeline(
    infrastructure: Infrastructure, database: str, tmp_path: Path
) -> Iterator[RunningPipeline]:
    """The four services as processes on their own topics and database (not yet started)."""
    running = RunningPipeline(infrastructure, database, tmp_path, ARTIFACTS)
    yield running
    exit_codes = running.stop_all()
    running.delete_topics()
    assert set(exit_codes.values()) <= {0}, f"SIGTERM must stop every service cleanly: {exit_codes}"


@pytest.fixture
def started(pipeline: RunningPipeline) -> RunningPipeline:
    pipeline.start_all()
    return pipeline
