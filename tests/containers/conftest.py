"""The container tests build images and run compose.yaml under podman (minutes): only when
asked for with `-m containers` (`make test-containers`), skipped by a plain `pytest`."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "containers" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="builds and runs images with podman: make test-containers")
    for item in items:
        if item.get_closest_marker("containers") is not None:
            item.add_marker(skip)
