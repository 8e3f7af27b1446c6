from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

TOOLS = REPO / ".stack" / "tools"


def tool(name: str, installed: Path) -> str:
    """A CI tool: PATH, then `make tools`' install; missing is a failure in CI."""
    found = shutil.which(name) or (str(installed) if installed.exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: `make tools` installs it")
        pytest.skip(f"{name} is not installed (make tools)")
    return found


@pytest.fixture(scope="session")
def helm() -> str:
    return tool("helm", TOOLS / "bin" / "helm")


@pytest.fixture(scope="session")
def compose_schema() -> Path:
    path = (
        TOOLS / "compose-spec" / "package" / "lib" / "compose-spec" / "schema" / "compose-spec.json"
    )
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail("the compose-spec schema is missing: `make tools` installs it")
        pytest.skip("the compose-spec schema is not installed (make tools)")
    return path


@pytest.fixture(scope="session")
def kube_score() -> str:
    return tool("kube-score", TOOLS / "bin" / "kube-score")


@pytest.fixture(scope="session")
def crd_files() -> list[Path]:
    """The operators' CRDs `make tools` copies from their Go modules, and Strimzi's subset."""
    published = sorted((TOOLS / "crds").glob("*.yaml"))
    if not published:
        if os.environ.get("CI"):
            pytest.fail("the operators' CRDs are missing: `make tools` installs them")
        pytest.skip("the operators' CRDs are not installed (make tools)")
    return [
        *published,
        REPO / "charts" / "sales-pipeline" / "ci" / "crd-schemas" / "strimzi-subset.yaml",
    ]


@pytest.fixture(scope="session")
def strimzi_models() -> Path:
    """Validators generated from Strimzi's published CRDs (npm), which `make tools` installs."""
    path = (
        TOOLS / "strimzi-models" / "node_modules" / "@kubernetes-models" / "strimzi-kafka-operator"
    )
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail("Strimzi's CRD validators are missing: `make tools` installs them")
        pytest.skip("Strimzi's CRD validators are not installed (make tools)")
    return path
