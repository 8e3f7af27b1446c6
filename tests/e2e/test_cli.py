"""The sales-pipeline command-line client against the running pipeline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from devstack.pipeline import RunningPipeline
from sales_cli.sync import folder_lock

from tests.conftest import DATA
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e


def cli(
    pipeline: RunningPipeline, client_id: str, *args: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        pipeline.url("ingest"),
        pipeline.url("dashboard"),
        client_id,
        secret or pipeline.secrets.client_secrets[client_id],
        *args,
        timeout_s=120,
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


def aged(path: Path, seconds: float = 120) -> Path:
    """As if written `seconds` ago: sync leaves files still being written alone."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_sync_uploads_a_folder_moves_each_file_and_a_rerun_adds_nothing(
    started: RunningPipeline, tmp_path: Path
) -> None:
    intake = tmp_path / "intake"
    intake.mkdir()
    # Content of its own: the dedup must see this file as new on the first run.
    unique = f"Halal Sync {uuid.uuid4().hex[:8]},1.50,2\n"
    good = (DATA / "sales.csv").read_text() + unique
    (intake / "daily.csv").write_text(good)
    shutil.copy(DATA / "invalid.csv", intake / "broken.csv")
    (intake / "notes.txt").write_text("not a CSV file")
    for path in intake.iterdir():
        aged(path)
    (intake / "still-writing.csv").write_text(good)  # fresh: left for the next run

    first = cli(started, "uploader", "sync", str(intake), "--min-age", "30", "--json")
    assert first.returncode == 1, first.stderr  # one file refused
    results = {r["file"]: r for r in json.loads(first.stdout)}
    assert set(results) == {"daily.csv", "broken.csv"}
    daily, broken = results["daily.csv"], results["broken.csv"]
    assert (daily["outcome"], daily["detail"]) == ("done", "complete")
    assert (daily["rows"], daily["valid"], daily["rejected"]) == (7, 4, 3)
    assert broken["outcome"] == "failed"
    assert (intake / "done" / "daily.csv").read_text() == good
    reason = (intake / "failed" / "broken.csv.reason.txt").read_text()
    assert "422" in reason
    assert "missing required columns: product" in reason
    assert (intake / "failed" / "broken.csv").exists()
    assert sorted(
        p.name for p in intake.iterdir() if p.is_file() and not p.name.startswith(".")
    ) == [
        "notes.txt",
        "still-writing.csv",
    ]

    # The same content again (a re-run after a crash, or the file dropped twice): done,
    # nothing new stored.
    aged(intake / "still-writing.csv")
    again = cli(started, "uploader", "sync", str(intake), "--min-age", "30")
    assert again.returncode == 0, again.stderr
    assert "already uploaded (same content)" in again.stdout
    assert "1 file(s): 1 done, 0 failed, 0 left for the next run" in again.stdout
    assert len(list((intake / "done").glob("*.csv"))) == 2
    status = cli(started, "uploader", "status", daily["upload_id"], "--json")
    assert json.loads(status.stdout)["valid_count"] == 4


def test_sync_refuses_to_run_twice_on_one_folder(started: RunningPipeline, tmp_path: Path) -> None:
    with folder_lock(tmp_path):
        blocked = cli(started, "uploader", "sync", str(tmp_path))
    assert blocked.returncode == 6
    assert "running already" in blocked.stderr
