"""The four services as real processes on their own topics, groups and database.

Used by the end-to-end and fault-injection tests and by the benchmarks: start, kill -9,
SIGTERM and restart any instance, and talk to the pipeline through its HTTP API.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr
from sales_cli.client import PipelineClient
from sales_common import kafka
from sales_common.kafka import ensure_topics
from sales_common.schema.migrations import migrate
from sales_common.services import SERVICES
from sales_common.settings import KafkaSettings, PostgresSettings, TopicSettings

from devstack import services
from devstack.config import REPO_ROOT
from devstack.secrets import StackSecrets, generate


async def create_database(admin_dsn: str, migrated: bool = True) -> str:
    """A fresh database next to `admin_dsn`'s, migrated unless told not to (an upgrade test
    applies the migrations itself); its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{admin_dsn.rpartition('/')[0]}/{name}"
    if migrated:
        await migrate(PostgresSettings(dsn=SecretStr(url)))
    return url


async def drop_database(admin_dsn: str, url: str) -> None:
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def delete_topics(settings: KafkaSettings, names: list[str] | None = None) -> None:
    """Delete a test's topics (default: `settings.topics`). The dev-stack broker keeps
    every record for 7 days: undeleted, a day of test and bench runs filled 73 GB."""
    await kafka.delete_topics(settings, names or list(settings.topics.names().values()))


def _shorten(line: str, keep: int = 1500) -> str:
    """Start and end of a long log line: a traceback's last lines name the error."""
    return line if len(line) <= keep else f"{line[: keep // 3]} ... {line[-2 * keep // 3 :]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Infrastructure:
    bootstrap_servers: str
    admin_dsn: str  # a database URL allowed to create databases
    # The dev stack's config when the broker and database are this machine's dev-stack
    # processes (fault-injection tests stop and restart them); None otherwise.
    local_stack: Any = None

    @property
    def session_timeout_ms(self) -> int:
        # The dev-stack broker allows 1 s; other brokers keep Kafka's 6 s minimum.
        return 2000 if self.local_stack else 6000


@dataclass
class RunningPipeline:
    infrastructure: Infrastructure
    database: str
    run_dir: Path
    log_root: Path = REPO_ROOT / "test-artifacts"
    secrets: StackSecrets = field(default_factory=generate)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    exit_codes: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.suffix
        self.topics = TopicSettings(
            raw=f"e{s}.raw", validated=f"e{s}.validated", rejected=f"e{s}.rejected"
        )
        self.kafka = KafkaSettings(
            bootstrap_servers=self.infrastructure.bootstrap_servers, topics=self.topics
        )
        asyncio.run(ensure_topics(self.kafka))
        session_timeout_ms = self.infrastructure.session_timeout_ms
        heartbeat = max(session_timeout_ms // 4, 250)
        self.endpoints = services.Endpoints(
            bootstrap_servers=self.infrastructure.bootstrap_servers,
            database_url=self.database,
            topics=self.topics.names(),
            group_suffix=f"-{s}",
            settings={
                "KAFKA__SESSION_TIMEOUT_MS": str(session_timeout_ms),
                "KAFKA__HEARTBEAT_INTERVAL_MS": str(heartbeat),
            },
        )
        self.log_dir = self.log_root / f"pipeline-{s}"
        self.client = PipelineClient(self.url("ingest"), self.url("dashboard"), timeout_s=600)

    def configure(self, **settings: str) -> None:
        """Settings (named without the service prefix) for the instances started from now."""
        self.endpoints = replace(self.endpoints, settings={**self.endpoints.settings, **settings})

    def problems(self, per_service: int = 10) -> str:
        """The last warnings and errors each service logged, for a failing test's report."""
        lines: list[str] = []
        for log_file in sorted(self.log_dir.glob("*.jsonl")):
            with log_file.open(encoding="utf-8", errors="replace") as handle:
                flagged = [
                    _shorten(line.rstrip())
                    for line in handle
                    if '"level":"warning"' in line or '"level":"error"' in line
                ]
            lines += [f"{log_file.stem}: {line}" for line in flagged[-per_service:]]
        return "\n".join(lines) or "(no warnings or errors logged)"

    def _port(self, label: str) -> int:
        if label not in self.ports:
            self.ports[label] = free_port()
        return self.ports[label]

    def url(self, name: str, instance: str = "") -> str:
        return f"http://127.0.0.1:{self._port(name + instance)}"

    def start(self, name: str, instance: str = "", wait: bool = True) -> None:
        label = name + instance
        process = services.start(
            name,
            self._port(label),
            self.endpoints,
            self.secrets,
            self.run_dir,
            self.log_dir,
            instance,
        )
        assert process is not None, f"{label} is already running"
        self.processes[label] = process
        if wait:
            services.wait_ready(self.url(name, instance), timeout_s=90)

    def start_all(self, validators: int = 1, loaders: int = 1) -> None:
        counts = {"loader": loaders, "validator": validators}
        for name in SERVICES:  # in start order
            for n in range(counts.get(name, 1)):
                self.start(name, "" if n == 0 else f"-{n + 1}", wait=False)
        for label in self.processes:
            services.wait_ready(f"http://127.0.0.1:{self.ports[label]}", timeout_s=90)

    def signal(self, label: str, sig: int, timeout_s: float = 60) -> int:
        """Send `sig` to an instance and wait for it to exit; returns its exit code."""
        process = self.processes.pop(label)
        if process.poll() is None:
            process.send_signal(sig)
        code = process.wait(timeout=timeout_s)
        (self.run_dir / f"{label}.pid").unlink(missing_ok=True)
        self.exit_codes.setdefault(label, []).append(code)
        return code

    def kill(self, label: str) -> None:
        self.signal(label, signal.SIGKILL)

    def token(self, client_id: str) -> str:
        return self.client.token(client_id, self.secrets.client_secrets[client_id])

    def delete_topics(self) -> None:
        asyncio.run(delete_topics(self.kafka))

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for label in list(self.processes):
            codes[label] = self.signal(label, signal.SIGTERM)
        self.client.close()
        return codes
