"""A small HTTP client of the pipeline's API: token, upload, wait, summary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx


class PipelineClient:
    def __init__(self, ingest_url: str, dashboard_url: str, timeout_s: float = 60) -> None:
        self.ingest_url = ingest_url
        self.dashboard_url = dashboard_url
        self._http = httpx.Client(timeout=timeout_s)

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
        """Stream `path`; `on_chunk(bytes_sent, lines_sent)` reports progress."""

        def chunks() -> Iterator[bytes]:
            sent = lines = 0
            with open(path, "rb") as handle:
                while chunk := handle.read(chunk_bytes):
                    yield chunk
                    sent += len(chunk)
                    lines += chunk.count(b"\n")
                    if on_chunk is not None:
                        on_chunk(sent, lines)

        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
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
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.upload_status(upload_id, token)
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
