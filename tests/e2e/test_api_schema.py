"""Schemathesis against the OpenAPI schemas of ingest and dashboard, on the running services:
no server errors and no response that breaks its schema, with and without a token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from devstack.pipeline import Infrastructure, RunningPipeline, create_database, drop_database
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def running(
    infrastructure: Infrastructure, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPipeline]:
    database = asyncio.run(create_database(infrastructure.admin_dsn))
    pipeline = RunningPipeline(
        infrastructure, database, Path(tmp_path_factory.mktemp("api")), ARTIFACTS
    )
    pipeline.start_all()
    yield pipeline
    pipeline.stop_all()
    pipeline.delete_topics()
    asyncio.run(drop_database(infrastructure.admin_dsn, database))


FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def fuzz(running: RunningPipeline, service: str, token: bool) -> int:
    """Every operation of the service's OpenAPI schema, with generated requests."""
    base_url = running.url(service)
    headers = {"Authorization": f"Bearer {running.token('operator')}"} if token else {}
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = 0
    for result in schema.get_all_operations():
        assert not isinstance(result, Err), f"the schema is invalid: {result.err()}"
        operation = result.ok()

        @FAST
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        check()
        operations += 1
    return operations


@pytest.mark.parametrize("token", [True, False], ids=["with-token", "without-token"])
def test_ingest(running: RunningPipeline, token: bool) -> None:
    assert fuzz(running, "ingest", token) == 2


@pytest.mark.parametrize("token", [True, False], ids=["with-token", "without-token"])
def test_dashboard(running: RunningPipeline, token: bool) -> None:
    # token, summary, products (+ CSV), uploads, an upload, its rejections (+ CSV), erasures
    assert fuzz(running, "dashboard", token) == 9
