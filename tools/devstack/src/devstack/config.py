"""Where the local stack lives and which ports it uses; every value can be set by environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sales_common.services import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[4]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class StackConfig:
    root: Path = field(
        default_factory=lambda: Path(os.environ.get("STACK_DIR", REPO_ROOT / ".stack"))
    )
    host: str = "127.0.0.1"
    kafka_port: int = field(default_factory=lambda: _env_int("KAFKA_PORT", 9092))
    kafka_controller_port: int = field(
        default_factory=lambda: _env_int("KAFKA_CONTROLLER_PORT", 9093)
    )
    postgres_port: int = field(default_factory=lambda: _env_int("POSTGRES_PORT", 5432))
    service_ports: dict[str, int] = field(
        default_factory=lambda: {
            name: _env_int(f"{service.env_prefix}PORT", service.port)
            for name, service in SERVICES.items()
        }
    )

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_ports[name]}"
