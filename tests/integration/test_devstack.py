"""devstack's own view of the local servers."""

from __future__ import annotations

import dataclasses

import pytest
from devstack import postgres
from devstack.pipeline import Infrastructure, free_port

pytestmark = pytest.mark.integration


def test_postgres_is_running_only_when_it_answers(infrastructure: Infrastructure) -> None:
    config = infrastructure.local_stack
    if config is None:
        pytest.skip("needs the dev-stack PostgreSQL")
    assert postgres.accepting(config)
    # A pid file says nothing about a dead postmaster; nobody answering on the port does.
    assert not postgres.accepting(dataclasses.replace(config, postgres_port=free_port()))
