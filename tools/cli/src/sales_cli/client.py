"""A small HTTP client of the pipeline's API: token, upload, wait, summary."""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

# Answers that say "not now": the status of an upload is worth asking again.
_TRANSIENT_STATUS = {502, 503, 504}


def content_digest(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """The RFC 9530 `Content-Digest` of a file: the server refuses a body that differs."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"


def _transient(error: httpx.HTTPError) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in _TRANSIENT_STATUS
    return isinstance(error, httpx.TransportError)


class PipelineClient:
    def __init__(
        self,
        ingest_url: str,
        dashboard_url: str,
        timeout_s: float = 60,
        transport: httpx.BaseTransport | None = None,  # tests pass a fake one
    ) -> None:
        self.ingest_url = ingest_url
        self.dashboard_url = dashboard_url
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def token(self, client_id: str, client_secret: str, scope: str | None = None) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if scope:
            form["scope"] = scope
        response = self._http.post(f"{self.dashboard_url}/oauth/token", data=form)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def upload(
        self,
        path: Path,
        token: str,
        idempotency_key: str | None = None,
        chunk_bytes: int = 256 * 1024,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> httpx.Response:
        """Stream `path` with its length and digest, so a body cut short or altered on the
        way is refused; `on_chunk(bytes_sent, lines_sent)` reports progress."""

        def chunks() -> Iterator[bytes]:
            sent = lines = 0
            with open(path, "rb") as handle:
                while chunk := handle.read(chunk_bytes):
                    yield chunk
                    sent += len(chunk)
                    lines += chunk.count(b"\n")
                    if on_chunk is not None:
                        on_chunk(sent, lines)

        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "text/csv",
            "Content-Length": str(path.stat().st_size),
            "Content-Digest": content_digest(path),
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self._http.post(
            f"{self.ingest_url}/api/v1/uploads",
            params={"filename": path.name},
            headers=headers,
            content=chunks(),
        )

    def _get_json(self, url: str, token: str) -> dict[str, Any]:
        response = self._http.get(url, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def upload_status(self, upload_id: str, token: str) -> dict[str, Any]:
        return self._get_json(f"{self.ingest_url}/api/v1/uploads/{upload_id}", token)

    def wait_complete(
        self,
        upload_id: str,
        token: str,
        timeout_s: float = 120,
        poll_s: float = 0.1,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the upload is complete or failed. A transient answer (503 while the
        database restarts, a refused connection) is retried with backoff until the deadline."""
        deadline = time.monotonic() + timeout_s
        backoff_s = poll_s
        while True:
            try:
                status = self.upload_status(upload_id, token)
            except httpx.HTTPError as exc:
                if not _transient(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(backoff_s * (0.5 + random.random() / 2))
                backoff_s = min(backoff_s * 2, 5.0)
                continue
            backoff_s = poll_s
            if on_status is not None:
                on_status(status)
            if status["status"] in ("complete", "failed"):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"upload {upload_id} still {status['status']} after {timeout_s}s"
                )
            time.sleep(poll_s)

    def summary(self, token: str) -> dict[str, Any]:
        return self._get_json(f"{self.dashboard_url}/api/v1/summary", token)

    def upload_detail(self, upload_id: str, token: str) -> dict[str, Any]:
        return self._get_json(f"{self.dashboard_url}/api/v1/uploads/{upload_id}", token)
