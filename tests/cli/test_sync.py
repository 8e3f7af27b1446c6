"""The folder sync's own decisions, against an in-process fake transport (no server)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from sales_cli.client import PipelineClient
from sales_cli.sync import idempotency_key, sync_folder


def folder_with(tmp_path: Path, **files: str) -> Path:
    then = time.time() - 600
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        os.utime(tmp_path / name, (then, then))
    return tmp_path


def answering(upload: httpx.Response) -> PipelineClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return upload

    return PipelineClient(
        "http://ingest", "http://dashboard", transport=httpx.MockTransport(handler)
    )


def test_an_unavailable_pipeline_leaves_the_file_for_the_next_run(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, **{"a.csv": "product,price,quantity\n"})
    busy = answering(httpx.Response(503, json={"detail": "the message broker is unavailable"}))
    (result,) = sync_folder(busy, "token", folder, min_age_s=60, timeout_s=5)
    assert (result.outcome, result.detail) == (
        "retry later",
        "503: the message broker is unavailable",
    )
    assert (folder / "a.csv").exists()
    assert not (folder / "done").exists()
    assert not (folder / "failed").exists()


def test_the_key_follows_the_content_not_the_name(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, **{"a.csv": "x\n", "b.csv": "x\n", "c.csv": "y\n"})
    keys = {name: idempotency_key(folder / name) for name in ("a.csv", "b.csv", "c.csv")}
    assert keys["a.csv"] == keys["b.csv"] != keys["c.csv"]
