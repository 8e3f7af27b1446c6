"""Uploads that measure or misbehave, shared by the fault tests and `make bench`.

`timed_small_uploads` is how "a small upload never waits" is measured: seconds from the
POST of a 6-row file to its status `complete`. `RawUpload` does over a plain socket what
well-behaved clients never do: stall, die mid-body, or send a body that differs from its
headers.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from devstack import generate
from devstack.pipeline import RunningPipeline
from devstack.processes import wait_until


def upload_states(pipeline: RunningPipeline) -> dict[str, tuple[str, str | None]]:
    """Every upload of the pipeline's database: id -> (status, error)."""

    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pipeline.database)
        try:
            return await conn.fetch("SELECT upload_id, status, error FROM uploads")
        finally:
            await conn.close()

    return {str(r["upload_id"]): (r["status"], r["error"]) for r in asyncio.run(fetch())}


def kill_ingest_while_publishing(pipeline: RunningPipeline, path: Path) -> tuple[str, float]:
    """Upload `path`, kill -9 ingest while it publishes (its transaction open on sales.raw),
    start a fresh ingest and never retry. Returns the dead upload's id and the kill's time."""
    outcome: dict[str, object] = {}

    def client() -> None:
        try:
            outcome["response"] = pipeline.client.upload(path, pipeline.token("uploader"))
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    before = set(upload_states(pipeline))
    thread = threading.Thread(target=client)
    thread.start()
    wait_until(
        lambda: any(s == "committing" for s, _ in upload_states(pipeline).values()),
        300,
        "the upload to be publishing",
        interval_s=0.02,
    )
    pipeline.kill("ingest")
    killed_at = time.monotonic()
    thread.join(60)
    (dead,) = set(upload_states(pipeline)) - before
    pipeline.start("ingest")
    return dead, killed_at


def timed_small_uploads(
    pipeline: RunningPipeline, directory: Path, count: int, seed: int, poll_s: float = 0.01
) -> tuple[list[float], dict[str, Path]]:
    """`count` distinct 6-row uploads, one after another: (seconds each, {upload_id: file})."""
    token = pipeline.token("uploader")
    latencies: list[float] = []
    uploads: dict[str, Path] = {}
    for n in range(count):
        path = generate.write(directory / f"small-{seed}-{n}.csv", 6, 0.2, seed=seed * 1000 + n)
        started = time.monotonic()
        response = pipeline.client.upload(path, token)
        if response.status_code != 202:
            raise AssertionError(f"small upload refused: {response.status_code} {response.text}")
        upload_id = response.json()["upload_id"]
        status = pipeline.client.wait_complete(upload_id, token, timeout_s=300, poll_s=poll_s)
        if status["status"] != "complete":
            raise AssertionError(f"small upload {upload_id} ended {status['status']}")
        latencies.append(time.monotonic() - started)
        uploads[upload_id] = path
    return latencies, uploads


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(latencies: list[float]) -> str:
    return (
        f"{len(latencies)} six-row uploads: p50 {statistics.median(latencies):.2f} s,"
        f" p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s"
    )


class RawUpload:
    """An upload of `path` to the pipeline's ingest over a plain socket."""

    def __init__(self, pipeline: RunningPipeline, path: Path, chunked: bool = False) -> None:
        url = urlsplit(pipeline.url("ingest"))
        self.body = path.read_bytes()
        self.chunked = chunked
        self.sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80))
        self.headers = {
            "Host": url.netloc,
            "Authorization": f"Bearer {pipeline.token('uploader')}",
            "Content-Type": "text/csv",
        }

    def start(self, **headers: str) -> None:
        if self.chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers.setdefault("Content-Length", str(len(self.body)))
        lines = ["POST /api/v1/uploads?filename=raw.csv HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in {**self.headers, **headers}.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, data: bytes) -> None:
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.sock.sendall(data)

    def end_chunked(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def answer(self, timeout_s: float = 60) -> str:
        """The response: status line, headers and the body of its Content-Length, which may
        come in a segment of its own after the headers."""
        self.sock.settimeout(timeout_s)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < self._answer_length(data):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    @staticmethod
    def _answer_length(data: bytes) -> int:
        """Bytes of the whole response, once its headers are in."""
        head, _, _ = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(head) + 4 + int(value)
        return len(head) + 4

    def die(self) -> None:
        """Like a killed process: the socket goes away mid-body (RST, no goodbye)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
