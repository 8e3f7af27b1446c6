"""Settings shared by every service: nested groups read from the environment.

Each service subclasses `ServiceSettings` with its own env prefix, so the loader reads
`LOADER_KAFKA__BOOTSTRAP_SERVERS` and `LOADER_POSTGRES__DSN`; the migrate command's
`MigrateSettings` (sales_common.schema.config) reads `MIGRATE_POSTGRES__DSN`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sales_common.logging import LOG_FILE_BACKUPS, LOG_FILE_MAX_BYTES, configure_logging

MIN_SECRET_BYTES = 32


def check_secret_length(secret: SecretStr, name: str) -> SecretStr:
    """Refuse short keys: an HMAC key under 32 bytes is guessable offline."""
    if len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"{name} must be at least {MIN_SECRET_BYTES} bytes")
    return secret


class TopicSettings(BaseModel):
    raw: str = "sales.raw"
    # sales.raw and its lane carry customer ids (encrypted): kept a day, not the broker's 7.
    raw_retention_ms: int = Field(default=86_400_000, ge=60_000)
    validated: str = "sales.validated"
    rejected: str = "sales.rejected"
    # The express lane for small uploads (docs/EXACTLY_ONCE.md, "Small uploads first"):
    # internal topics, each named after its main topic unless set.
    raw_priority: str = ""
    validated_priority: str = ""
    rejected_priority: str = ""

    @model_validator(mode="after")
    def _name_priority_lanes(self) -> TopicSettings:
        for role in ("raw", "validated", "rejected"):
            if not getattr(self, f"{role}_priority"):
                setattr(self, f"{role}_priority", f"{getattr(self, role)}.priority")
        return self

    def names(self) -> dict[str, str]:
        """Role -> topic name, for every topic the pipeline uses."""
        return {role: name for role, name in self.model_dump().items() if isinstance(name, str)}

    def priority_of(self, topic: str) -> str:
        """The express-lane twin of a main topic."""
        twins = {
            self.raw: self.raw_priority,
            self.validated: self.validated_priority,
            self.rejected: self.rejected_priority,
        }
        return twins[topic]


# librdkafka properties, as confluent-kafka takes them.
ClientConfig = dict[str, str | int | float | bool]


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    topics: TopicSettings = Field(default_factory=TopicSettings)
    request_timeout_ms: int = 15_000
    # How fast the group notices a dead member (kill -9): the broker's
    # group.min.session.timeout.ms bounds it from below (6 s by default).
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # Producer batches (librdkafka batch.size / linger.ms): chosen by measurement, see
    # docs/BENCHMARKS.md "Kafka batching"; the broker's default message.max.bytes is 1 MiB.
    producer_batch_bytes: int = 256 * 1024
    producer_linger_ms: int = 5
    # How many bytes of records a producer holds before the broker has them: produce()
    # then waits (TransactionalProducer.send_all). librdkafka's default, 1 GiB, let ingest
    # grow by 108 MB publishing a 1 GB upload (docs/BENCHMARKS.md).
    producer_queue_kbytes: int = 16 * 1024
    # How many bytes of fetched records a consumer buffers ahead of its application.
    consumer_queue_kbytes: int = 16 * 1024
    # How long the broker holds a fetch that has nothing to return. A read_committed fetch
    # is not answered when a transaction commits, only when this runs out: librdkafka's
    # 500 ms default put up to 0.5 s on each of a small upload's two hops.
    consumer_fetch_wait_ms: int = 50
    # How long a consumer whose queue is full (consumer_queue_kbytes, or librdkafka's
    # queued.min.messages) waits before it fetches again. librdkafka's 1 s outlasted the
    # drain of the queue: a loader catching up idled half of every second
    # (docs/BENCHMARKS.md, "The consumers' fetch backoff").
    consumer_fetch_queue_backoff_ms: int = 100
    statistics_interval_ms: int = 1_000
    # A consumer whose group join has not settled for this long while its coordinator
    # answers is replaced by a new one (sales_common.consume.GroupWatch): after a Kafka
    # restart librdkafka once left a lane's consumer out of its group for good. A healthy
    # member waiting longer for a slow peer (up to max.poll.interval.ms) costs one more
    # rebalance round when replaced, never records.
    consumer_stuck_s: float = 60.0

    def client_config(self) -> ClientConfig:
        """librdkafka properties every client (producer, consumer, admin) shares."""
        config: ClientConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            "socket.timeout.ms": self.request_timeout_ms,
            # librdkafka's own logs go to stderr unparsed; the services log what matters.
            "log_level": 3,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            # "probe": the system's CA bundle, as Python's default context uses it.
            config["ssl.ca.location"] = self.ssl_cafile or "probe"
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        return config

    def producer_config(
        self,
        transactional_id: str,
        transaction_timeout_ms: int = 60_000,
        linger_ms: int | None = None,
        eager_connections: bool = False,
    ) -> ClientConfig:
        """An exactly-once producer: idempotent, acks=all, transactional; `linger_ms`
        instead of `producer_linger_ms` (a lane of small batches has nothing to wait for).

        `eager_connections`: connect to every broker as soon as it is known. librdkafka
        drops its bootstrap connection once it has learned the brokers and connects to one
        only when needed, ~50 ms later (`reconnect.backoff.ms` / 2); InitProducerId asking
        in between finds no broker and retries on a fixed 500 ms timer: one start in six
        here. For producers whose start is on a request's or a batch's path; it costs a
        connection to every broker of the cluster."""
        config: ClientConfig = {
            **self.client_config(),
            "transactional.id": transactional_id,
            "transaction.timeout.ms": transaction_timeout_ms,
            # librdkafka refuses a socket timeout longer than the transaction's.
            "socket.timeout.ms": min(self.request_timeout_ms, transaction_timeout_ms),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self.producer_linger_ms if linger_ms is None else linger_ms,
            "batch.size": self.producer_batch_bytes,
            "queue.buffering.max.kbytes": self.producer_queue_kbytes,
            # The Java client's partitioner: keyed records land where any other Kafka
            # client would put them (librdkafka's default is CRC32-based).
            "partitioner": "murmur2_random",
        }
        if eager_connections:
            # librdkafka's behaviour before 1.0; a hidden property its own tests use.
            config["enable.sparse.connections"] = False
        return config

    def consumer_config(self, group_id: str) -> ClientConfig:
        """A consumer in `group_id` that reads committed records only and commits by hand."""
        return {
            **self.client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": self.heartbeat_interval_ms,
            "queued.max.messages.kbytes": self.consumer_queue_kbytes,
            "fetch.wait.max.ms": self.consumer_fetch_wait_ms,
            "fetch.queue.backoff.ms": self.consumer_fetch_queue_backoff_ms,
            "statistics.interval.ms": self.statistics_interval_ms,
        }


class PostgresSettings(BaseModel):
    dsn: SecretStr = SecretStr("postgresql://sales@127.0.0.1:5432/sales")
    # asyncpg's default "prefer" silently falls back to plaintext; say what you mean.
    sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"
    sslrootcert: str | None = None
    # 0: start (and answer /readyz with 503) even while the database is down.
    pool_min_size: int = 0
    pool_max_size: int = 5
    command_timeout_s: float = 30.0


class AuthSettings(BaseModel):
    """The built-in issuer (HS256, shared secret) and, optionally, an external OpenID Connect
    issuer whose RS256/ES256 tokens are verified with the keys of its JWKS URL."""

    jwt_secret: SecretStr
    issuer: str = "sales-pipeline"
    audience: str = "sales-pipeline"
    leeway_s: int = 10
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_algorithms: list[Literal["RS256", "ES256"]] = Field(default=["RS256", "ES256"])
    jwks_cache_s: int = 300

    _check_secret = field_validator("jwt_secret")(
        lambda v: check_secret_length(v, "auth.jwt_secret")
    )


class ProcessSettings(BaseSettings):
    """Fields every program configured from its environment has (the services and the
    `sales-migrate` command); subclasses add their own groups and an env prefix."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    log_level: str = "INFO"
    log_file: str | None = Field(default=None, validation_alias="LOG_FILE")
    # LOG_FILE rotates at this size, keeping this many old files.
    log_file_max_bytes: int = Field(
        default=LOG_FILE_MAX_BYTES, gt=0, validation_alias="LOG_FILE_MAX_BYTES"
    )
    log_file_backups: int = Field(
        default=LOG_FILE_BACKUPS, ge=0, validation_alias="LOG_FILE_BACKUPS"
    )
    log_json: bool = True

    def configure_logging(self, service: str) -> None:
        """configure_logging() with this program's logging settings."""
        configure_logging(
            service,
            self.log_level,
            self.log_file,
            self.log_json,
            max_bytes=self.log_file_max_bytes,
            backups=self.log_file_backups,
        )


AccessLog = Literal["all", "notable", "off"]


class ServiceSettings(ProcessSettings):
    """Fields every service has; subclasses add their own groups and an env prefix."""

    service_name: str = "sales"
    host: str = "127.0.0.1"
    port: int = 8000
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    # Which requests get a line in the log (sales_common.observability.HttpTelemetry):
    # "notable" = failed (>= 400), slow (>= 1 s) or not a read; every request is counted
    # and timed in the metrics whatever this says.
    access_log: AccessLog = "notable"
    # Allocations between two young-generation garbage collections (Python's default is 700),
    # with everything built at start-up frozen out of later collections: a loader batch holds
    # thousands of tracked objects, which the collector traversed with the whole heap again and
    # again (1.5-14% of a loader's CPU in perf profiles, 0.1% after; docs/BENCHMARKS.md). 0
    # leaves Python's defaults.
    gc_threshold: int = Field(default=50_000, ge=0)
