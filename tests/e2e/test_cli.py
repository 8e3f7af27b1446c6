"""The sales-pipeline command-line client against the running pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from devstack.pipeline import RunningPipeline

from tests.conftest import DATA

pytestmark = pytest.mark.e2e


def cli(
    pipeline: RunningPipeline, client_id: str, *args: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SALES_INGEST_URL": pipeline.url("ingest"),
        "SALES_DASHBOARD_URL": pipeline.url("dashboard"),
        "SALES_CLIENT_ID": client_id,
        "SALES_CLIENT_SECRET": secret or pipeline.secrets.client_secrets[client_id],
        "HOME": "/nonexistent",
    }
    return subprocess.run(
        [sys.executable, "-m", "sales_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_upload_wait_status_summary(started: RunningPipeline) -> None:
    upload = cli(started, "uploader", "upload", "--wait", "--json", str(DATA / "sales.csv"))
    assert upload.returncode == 0, upload.stderr
    (result,) = json.loads(upload.stdout)
    assert (result["status"], result["valid_count"], result["rejected_count"]) == ("complete", 3, 3)
    assert "upload" in upload.stderr  # the progress lines
    assert "process" in upload.stderr

    status = cli(started, "uploader", "status", result["upload_id"])
    assert status.returncode == 0
    assert "complete" in status.stdout

    summary = cli(started, "viewer", "summary")
    assert summary.returncode == 0, summary.stderr
    assert "2499.83" in summary.stdout
    assert "Halal Laptop" in summary.stdout


def test_clear_messages_and_exit_codes(started: RunningPipeline) -> None:
    refused = cli(started, "uploader", "upload", str(DATA / "invalid.csv"))
    assert refused.returncode == 5
    assert "422" in refused.stderr
    assert "missing required columns: product" in refused.stderr

    wrong_secret = cli(started, "uploader", "upload", str(DATA / "sales.csv"), secret="wrong")
    assert wrong_secret.returncode == 3
    assert "401" in wrong_secret.stderr

    no_scope = cli(started, "viewer", "upload", str(DATA / "sales.csv"))
    assert no_scope.returncode == 3
    assert "403" in no_scope.stderr
