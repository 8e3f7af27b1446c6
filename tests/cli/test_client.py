"""The API client's own logic, against an in-process fake transport (no server)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from sales_cli.client import PipelineClient, content_digest


def client_answering(*answers: int) -> tuple[PipelineClient, list[str]]:
    """A client whose status calls get `answers` in turn (then 200 'complete')."""
    seen: list[str] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        code = queue.pop(0) if queue else 200
        if code == 0:
            raise httpx.ConnectError("refused", request=request)
        if code != 200:
            return httpx.Response(code, json={"error": "unavailable", "detail": "database"})
        return httpx.Response(200, json={"status": "complete", "upload_id": "u"})

    client = PipelineClient(
        "http://ingest", "http://dashboard", transport=httpx.MockTransport(handler)
    )
    return client, seen


def test_wait_rides_out_transient_answers_until_the_upload_completes() -> None:
    client, seen = client_answering(503, 0, 502, 503)
    status = client.wait_complete("u", "token", timeout_s=30, poll_s=0.001)
    assert status["status"] == "complete"
    assert len(seen) == 5


def test_wait_gives_up_at_the_deadline_with_the_last_error() -> None:
    client, _ = client_answering(*([503] * 1000))
    with pytest.raises(httpx.HTTPStatusError):
        client.wait_complete("u", "token", timeout_s=0.05, poll_s=0.001)


def test_a_client_error_is_not_retried() -> None:
    client, seen = client_answering(404)
    with pytest.raises(httpx.HTTPStatusError):
        client.wait_complete("u", "token", timeout_s=30, poll_s=0.001)
    assert len(seen) == 1


def test_uploads_carry_their_length_and_rfc_9530_digest(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"product,price,quantity\nHalal A,1,1\n")
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return httpx.Response(202, json={})

    client = PipelineClient(
        "http://ingest", "http://dashboard", transport=httpx.MockTransport(handler)
    )
    client.upload(path, "token")
    expected = base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    assert sent[0].headers["content-digest"] == f"sha-256=:{expected}:" == content_digest(path)
    assert sent[0].headers["content-length"] == str(path.stat().st_size)
    assert "transfer-encoding" not in sent[0].headers
    assert sent[0].content == path.read_bytes()
