"""`sales-pipeline sync DIR`: the scheduled intake of a folder (the seed's daily ETL).

Every CSV file directly in DIR that nobody wrote to for `min_age_s` is uploaded with the
same client and guarantees as `upload`, followed until processed, then moved:
- to `done/` when its upload completed, or when the pipeline already had the same content
  (content dedup: a re-run, or the same file dropped twice, adds nothing);
- to `failed/`, with `<name>.reason.txt` beside it, when the pipeline refused it (422, 413,
  415) or its processing failed;
- nowhere when the pipeline could not be reached or answered 503: the next run retries it,
  with the same Idempotency-Key (derived from the content), so an upload cut short by a
  crash is taken over, never doubled.
A lock file in DIR keeps two runs (a slow one and the next scheduled one) apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from sales_cli.client import PipelineClient

Outcome = Literal["done", "failed", "retry later"]
LOCK_NAME = ".sales-pipeline-sync.lock"
_REFUSED = {413, 415, 422}


@dataclass(frozen=True)
class FileResult:
    file: str
    outcome: Outcome
    detail: str
    upload_id: str | None = None
    rows: int | None = None
    valid: int | None = None
    rejected: int | None = None


class AlreadyRunning(Exception):
    """Another sync of the same folder holds its lock."""


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    with open(folder / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(str(folder)) from None
        yield


def pending(folder: Path, min_age_s: float) -> list[Path]:
    """CSV files directly in `folder`, oldest name first, that are not being written."""
    now = time.time()
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and path.suffix.lower() == ".csv"
        and now - path.stat().st_mtime >= min_age_s
    )


def idempotency_key(path: Path) -> str:
    """Stable across runs for the same content: a retried upload is taken over."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return f"sync-{digest.hexdigest()[:48]}"


def move(path: Path, to: str, reason: str | None = None) -> Path:
    """Into `to/` beside it; a name taken there already gets a timestamp suffix."""
    target_dir = path.parent / to
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        target = target_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}"
    if reason is not None:
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
    os.replace(path, target)
    return target


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:300]


def sync_file(client: PipelineClient, token: str, path: Path, timeout_s: float) -> FileResult:
    name = path.name
    try:
        response = client.upload(path, token, idempotency_key=idempotency_key(path))
        if response.status_code in _REFUSED:
            reason = f"{response.status_code}: {_detail(response)}"
            move(path, "failed", reason)
            return FileResult(name, "failed", reason)
        if response.status_code >= 400:  # 503, 5xx, auth: the next run retries
            return FileResult(name, "retry later", f"{response.status_code}: {_detail(response)}")
        accepted = response.json()
        status = client.wait_complete(accepted["upload_id"], token, timeout_s=timeout_s, poll_s=0.2)
    except (httpx.TransportError, TimeoutError) as exc:
        return FileResult(name, "retry later", f"{type(exc).__name__}: {exc}")
    counts = {
        "upload_id": status["upload_id"],
        "rows": status["rows_total"],
        "valid": status["valid_count"],
        "rejected": status["rejected_count"],
    }
    if status["status"] == "failed":
        reason = f"processing failed: {status.get('error') or 'no reason given'}"
        move(path, "failed", reason)
        return FileResult(name, "failed", reason, **counts)
    # The same content again comes back as the first upload: a replay of its key, or a
    # duplicate when it was sent under another key.
    again = accepted["duplicate"] or accepted.get("idempotent_replay", False)
    detail = "already uploaded (same content)" if again else "complete"
    move(path, "done")
    return FileResult(name, "done", detail, **counts)


def sync_folder(
    client: PipelineClient, token: str, folder: Path, min_age_s: float, timeout_s: float
) -> list[FileResult]:
    with folder_lock(folder):
        return [sync_file(client, token, path, timeout_s) for path in pending(folder, min_age_s)]
