"""Fault-injection fixtures: a running pipeline per test, and a report of every run."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack import generate
from devstack.pipeline import RunningPipeline

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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed fault test shows what the services logged: CI keeps only the console."""
    report: pytest.TestReport = yield
    pipeline = getattr(item, "funcargs", {}).get("pipeline")
    if report.failed and isinstance(pipeline, RunningPipeline):
        report.sections.append(("service warnings and errors", pipeline.problems()))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _RESULTS:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability.json").write_text(json.dumps(_RESULTS, indent=2))
    lines = [
        "| fault | injected | rows | lost | duplicated | recovery s | figures |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['fault']} | {r['injected']} | {r['rows']:,} | {r['lost']} | {r['duplicated']} |"
            f" {r['recovery_s']:.1f} | {r.get('figures', '')} |"
            for r in _RESULTS
        ),
    ]
    (ARTIFACTS / "reliability.md").write_text("\n".join(lines) + "\n")
