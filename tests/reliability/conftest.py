"""Fault-injection fixtures: a running pipeline per test, and a report of every run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack import generate

from tests.conftest import ARTIFACTS

ROWS = 200_000
_RESULTS: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 rows, 10% invalid, with customer ids, dates and transaction ids."""
    return generate.write(tmp_path_factory.mktemp("data") / "faults.csv", ROWS, 0.1, seed=11)


@pytest.fixture
def report() -> Iterator[dict[str, Any]]:
    entry: dict[str, Any] = {}
    yield entry
    if entry:
        _RESULTS.append(entry)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _RESULTS:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability.json").write_text(json.dumps(_RESULTS, indent=2))
    lines = [
        "| fault | injected | rows | lost | duplicated | recovery s |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['fault']} | {r['injected']} | {r['rows']:,} | {r['lost']} | {r['duplicated']} |"
            f" {r['recovery_s']:.1f} |"
            for r in _RESULTS
        ),
    ]
    (ARTIFACTS / "reliability.md").write_text("\n".join(lines) + "\n")
