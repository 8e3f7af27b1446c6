"""compose.yaml under podman-compose, with its start order kept by this driver.

podman-compose (Debian's 1.0.3) turns compose.yaml into podman containers, networks and volumes,
but ignores `depends_on` conditions, and healthchecks only run on their own under systemd,
which these machines lack. So the stack is created with `up --no-start`, and each container is
started here once what it depends on is as compose.yaml says: `service_healthy` by running the
container's own healthcheck (`podman healthcheck run`) until it passes, and
`service_completed_successfully` by `podman wait` and its exit code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.containers.images import DEPLOY, REPO, ImageError, podman, podman_env

COMPOSE = REPO / "compose.yaml"
OVERRIDE = DEPLOY / "compose.podman.yaml"


class StackError(RuntimeError):
    pass


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def start_order(services: dict[str, Any], wanted: list[str]) -> list[str]:
    """`wanted` and everything they depend on, each after its dependencies."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise StackError(f"depends_on cycle: {' -> '.join((*path, name))}")
        for dep in _depends_on(services[name]):
            visit(dep, (*path, name))
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


@dataclass
class ComposeStack:
    """One compose project: compose.yaml and the podman override copied into `workdir` beside
    the `.env` file the caller wrote there (podman-compose reads `.env` from the folder of the
    first compose file, and a copy keeps a developer's own .env out of it)."""

    project: str
    workdir: Path
    env: dict[str, str]
    services: list[str]
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        shutil.copy2(COMPOSE, self.workdir / "compose.yaml")
        shutil.copy2(OVERRIDE, self.workdir / "compose.podman.yaml")
        self.spec: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]

    def compose(self, *args: str) -> None:
        if shutil.which("podman-compose") is None:
            raise StackError("podman-compose is missing (apt-get install podman-compose)")
        command = ["podman-compose", "-p", self.project, "-f", "compose.yaml"]
        command += ["-f", "compose.podman.yaml", *args]
        result = subprocess.run(
            command,
            cwd=self.workdir,
            env={**podman_env(), **self.env},
            capture_output=True,  # stdout echoes every podman command, secrets included
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            raise StackError(f"podman-compose {args[0]}: {result.stderr.strip()[-3000:]}")

    def container(self, service: str) -> str:
        found = podman(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.ID}}",
        ).stdout.split()
        if len(found) != 1:
            raise StackError(f"{service}: expected one container, found {found}")
        return found[0]

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(
            podman("container", "inspect", self.container(service)).stdout
        )
        return data[0]

    def logs(self, service: str) -> str:
        result = podman("logs", self.container(service), check=False)
        return result.stdout + result.stderr

    def healthy(self, service: str) -> bool:
        """compose.yaml's healthcheck of `service`, run once now."""
        return podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self.compose("up", "--no-start", "--no-build", *self.services)
        for service in start_order(self.spec, self.services):
            for dep, condition in _depends_on(self.spec[service]).items():
                self.wait_for(dep, condition, deadline)
            podman("start", self.container(service))
            self.started.append(service)

    def wait_for(self, service: str, condition: str, deadline: float) -> None:
        if condition == "service_started":
            return
        if condition == "service_completed_successfully":
            remaining = max(deadline - time.monotonic(), 1)
            try:
                waited = podman("wait", self.container(service), timeout=remaining)
            except subprocess.TimeoutExpired as exc:
                raise StackError(f"{service} still runs\n{self.logs(service)[-3000:]}") from exc
            code = int(waited.stdout.strip() or -1)
            if code != 0:
                raise StackError(f"{service} exited {code}\n{self.logs(service)[-3000:]}")
            return
        if condition != "service_healthy":
            raise StackError(f"{service}: unknown depends_on condition {condition}")
        while not self.healthy(service):
            state = self.inspect(service)["State"]
            if not state["Running"]:
                raise StackError(
                    f"{service} stopped (exit {state['ExitCode']})\n{self.logs(service)[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"{service} not healthy in time\n{self.logs(service)[-3000:]}")
            time.sleep(1)  # polling interval of the healthcheck, bounded by the deadline

    def save_logs(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for service in self.started:
            try:
                (folder / f"{service}.log").write_text(self.logs(service))
            except (StackError, ImageError):
                continue

    def down(self) -> None:
        """Stop (SIGTERM, compose.yaml's grace) and remove the containers, volumes and network."""
        label = f"label=io.podman.compose.project={self.project}"
        remove_project(label, f"{self.project}_default")


def remove_project(label: str, network: str) -> None:
    ids = podman("ps", "-a", "-q", "--filter", label).stdout.split()
    if ids:
        podman("stop", "-t", "30", *ids, check=False, timeout=120)
        podman("rm", "-f", "-v", *ids, check=False)  # -v: anonymous volumes (image VOLUMEs)
    volumes = podman("volume", "ls", "-q", "--filter", label).stdout.split()
    if volumes:
        podman("volume", "rm", "-f", *volumes, check=False)
    podman("network", "rm", "-f", network, check=False)
