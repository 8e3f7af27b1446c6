"""The four services as real processes on their own topics, groups and database.

Used by the end-to-end tests and the fault-injection tests: start, kill -9, SIGTERM and
restart any instance, and talk to the pipeline through its HTTP API.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devstack import services
from devstack.client import PipelineClient
from devstack.secrets import StackSecrets, generate
from sales_common.kafka import ensure_topics
from sales_common.settings import KafkaSettings, TopicSettings

from tests.conftest import ARTIFACTS, Infrastructure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningPipeline:
    infrastructure: Infrastructure
    database: str
    run_dir: Path
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
            topics=self.topics.model_dump(),
            group_suffix=f"-{s}",
            settings={
                "KAFKA__SESSION_TIMEOUT_MS": str(session_timeout_ms),
                "KAFKA__HEARTBEAT_INTERVAL_MS": str(heartbeat),
            },
        )
        self.log_dir = ARTIFACTS / f"pipeline-{s}"
        self.client = PipelineClient(
            self.url("ingest", port=self._port("ingest")),
            self.url("dashboard", port=self._port("dashboard")),
            timeout_s=600,
        )

    def _port(self, label: str) -> int:
        if label not in self.ports:
            self.ports[label] = free_port()
        return self.ports[label]

    def url(self, name: str, instance: str = "", port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self._port(name + instance)}"

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
        for name, count in (
            ("loader", loaders),
            ("validator", validators),
            ("ingest", 1),
            ("dashboard", 1),
        ):
            for n in range(count):
                self.start(name, "" if n == 0 else f"-{n + 1}", wait=False)
        for label in self.processes:
            name, _, _ = label.partition("-")
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

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for label in list(self.processes):
            codes[label] = self.signal(label, signal.SIGTERM)
        self.client.close()
        return codes
