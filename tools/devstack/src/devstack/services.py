"""The four services as local uvicorn processes, configured through their environment.

Started in the order of sales_common.services.SERVICES (the loader first)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sales_common.services import SERVICES

from devstack import processes
from devstack.config import StackConfig
from devstack.secrets import StackSecrets


@dataclass(frozen=True)
class Endpoints:
    """Where a service finds its dependencies; tests use their own topics and database."""

    bootstrap_servers: str
    database_url: str
    topics: Mapping[str, str] = field(default_factory=dict)
    group_suffix: str = ""
    # Further settings, named without the service prefix for every service,
    # e.g. {"KAFKA__SESSION_TIMEOUT_MS": "2000"}, or with one service's prefix for that one.
    settings: Mapping[str, str] = field(default_factory=dict)


def service_env(
    name: str, port: int, endpoints: Endpoints, secrets: StackSecrets, log_file: Path | None
) -> dict[str, str]:
    prefix = SERVICES[name].env_prefix
    env = {
        "PATH": os.environ.get("PATH", ""),
        f"{prefix}PORT": str(port),
        f"{prefix}KAFKA__BOOTSTRAP_SERVERS": endpoints.bootstrap_servers,
        f"{prefix}POSTGRES__DSN": endpoints.database_url,
    }
    for role, topic in endpoints.topics.items():
        env[f"{prefix}KAFKA__TOPICS__{role.upper()}"] = topic
    for key, value in endpoints.settings.items():
        if not any(key.startswith(s.env_prefix) for s in SERVICES.values()):
            env[f"{prefix}{key}"] = value
        elif key.startswith(prefix):  # named with one service's prefix: that one only
            env[key] = value
    if log_file is not None:
        env["LOG_FILE"] = str(log_file)
    if name in ("ingest", "dashboard"):
        env[f"{prefix}AUTH__JWT_SECRET"] = secrets.jwt_secret
    if name in ("ingest", "validator"):
        env[f"{prefix}PII_ENCRYPTION__KEY"] = secrets.pii_encryption_key
    if name in ("validator", "dashboard"):  # the dashboard hashes the ids it erases
        env[f"{prefix}PII__HMAC_KEY"] = secrets.pii_hmac_key
    if name == "dashboard":
        env["DASHBOARD_CLIENTS"] = secrets.clients_json()
        env["DASHBOARD_USERS"] = secrets.users_json()
    if endpoints.group_suffix and name in ("validator", "loader"):
        env[f"{prefix}GROUP_ID"] = f"{name}{endpoints.group_suffix}"
        if name == "validator":
            env["VALIDATOR_TRANSACTIONAL_ID_PREFIX"] = f"validator{endpoints.group_suffix}"
    return env


def command(name: str) -> list[str]:
    return [sys.executable, "-m", name]


def start(
    name: str,
    port: int,
    endpoints: Endpoints,
    secrets: StackSecrets,
    run_dir: Path,
    log_dir: Path,
    instance: str = "",
) -> subprocess.Popen[bytes] | None:
    """Start one service process; None when it already runs."""
    label = f"{name}{instance}"
    pid_file = run_dir / f"{label}.pid"
    if processes.read_pid(pid_file):
        return None
    env = service_env(name, port, endpoints, secrets, log_dir / f"{label}.jsonl")
    return processes.spawn(command(name), pid_file, log_dir / f"{label}.out", env=env)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 - local URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(url: str, timeout_s: float = 90) -> None:
    processes.wait_until(lambda: ready(url), timeout_s, f"{url}/readyz")


def stop(name: str, run_dir: Path, instance: str = "") -> bool:
    return processes.stop(run_dir / f"{name}{instance}.pid", timeout_s=40)


def start_all(config: StackConfig, endpoints: Endpoints, secrets: StackSecrets) -> None:
    for name in SERVICES:
        start(name, config.service_ports[name], endpoints, secrets, config.run_dir, config.log_dir)
    for name in SERVICES:
        wait_ready(config.service_url(name))
