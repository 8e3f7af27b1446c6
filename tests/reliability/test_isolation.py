"""Every upload isolated: a slow, stalled, dead or lying uploader holds back nobody, and a
small upload never waits behind a big one.

Real broker, database and service processes. Small uploads are timed from their POST to
`complete`; the figures go to the reliability report (not asserted as timings: these
machines are noisy). The independent checker verifies every accepted upload (lost 0,
duplicated 0), and `left_nothing` that a failed one is visible nowhere downstream.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from devstack import generate
from devstack.pipeline import RunningPipeline
from devstack.probes import (
    RawUpload,
    describe,
    kill_ingest_while_publishing,
    timed_small_uploads,
    upload_states,
)
from devstack.processes import wait_until
from sales_cli.client import content_digest
from sales_common.events import raw_sales

from tests.helpers import consume_quiet
from tests.reliability.test_faults import _fetch, upload, verify_and_record

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def left_nothing(pipeline: RunningPipeline, upload_id: str) -> str:
    """A failed upload: status failed, no row stored, no record visible downstream."""
    status, error = upload_states(pipeline)[upload_id]
    assert status == "failed", (status, error)
    stored = _fetch(
        pipeline, "SELECT upload_id FROM sales UNION ALL SELECT upload_id FROM rejections"
    )
    assert uuid.UUID(upload_id) not in {r["upload_id"] for r in stored}
    topics = pipeline.topics
    raw = asyncio.run(consume_quiet(pipeline.kafka, [topics.raw, topics.raw_priority]))
    assert all(row.upload_id != upload_id for r in raw for row in raw_sales(r.value or b""))
    return error or ""


def failed_id(pipeline: RunningPipeline, known: set[str]) -> str:
    """The one upload that is not among `known` (the ones this test made itself)."""
    others = [u for u in upload_states(pipeline) if u not in known]
    assert len(others) == 1, others
    return others[0]


def test_a_stalled_client_holds_back_nobody(
    pipeline: RunningPipeline, big_csv: Path, tmp_path: Path, report: dict[str, Any]
) -> None:
    pipeline.configure(UPLOADS__IDLE_TIMEOUT_S="10")
    pipeline.start_all()
    stalled = RawUpload(pipeline, big_csv)
    stalled.start()
    stalled.send(stalled.body[: len(stalled.body) // 2])
    wait_until(lambda: bool(upload_states(pipeline)), 30, "the stalled upload to be recorded")
    stalled_id = next(iter(upload_states(pipeline)))
    latencies, uploads = timed_small_uploads(pipeline, tmp_path, 5, seed=1)
    assert upload_states(pipeline)[stalled_id][0] == "receiving", "it must still be stalled"
    answer = stalled.answer()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "no data for 10 s" in left_nothing(pipeline, stalled_id)
    verify_and_record(
        report,
        pipeline,
        "a client stalls half way through a 200k-row body (idle timeout 10 s)",
        1,
        uploads,
        max(latencies),
        figures=f"meanwhile {describe(latencies)}; the stalled one 408 and failed",
    )


def test_a_dead_ingest_without_retry_holds_back_nobody(
    pipeline: RunningPipeline, tmp_path: Path, report: dict[str, Any]
) -> None:
    big = generate.write(tmp_path / "big.csv", 400_000, 0.1, seed=21)
    pipeline.start_all()
    dead_id, killed_at = kill_ingest_while_publishing(pipeline, big)
    latencies, uploads = timed_small_uploads(pipeline, tmp_path, 5, seed=2)
    wait_until(lambda: upload_states(pipeline)[dead_id][0] == "failed", 90, "the janitor", 0.2)
    failed_after = time.monotonic() - killed_at
    assert "abandoned while committing" in left_nothing(pipeline, dead_id)
    # The main lane is not stuck behind the dead transaction: a big upload goes through.
    after = generate.write(tmp_path / "after.csv", 20_000, 0.1, seed=22)
    response = upload(pipeline, after)
    assert response.status_code == 202, response.text
    uploads[response.json()["upload_id"]] = after
    pipeline.client.wait_complete(response.json()["upload_id"], pipeline.token("uploader"), 120)
    verify_and_record(
        report,
        pipeline,
        "kill -9 ingest while it publishes a 400k-row upload, no retry",
        1,
        uploads,
        failed_after,
        figures=f"{describe(latencies)}; the dead one failed after {failed_after:.1f} s",
    )


def test_bodies_that_differ_from_their_headers_are_refused_and_leave_nothing(
    pipeline: RunningPipeline, big_csv: Path, tmp_path: Path, report: dict[str, Any]
) -> None:
    pipeline.start_all()
    # `curl -T -` whose feeding program died: the chunked body ends normally, but short.
    # Only the digest of what was meant to be sent can tell.
    cut_short = RawUpload(pipeline, big_csv, chunked=True)
    cut_short.start(**{"Content-Digest": content_digest(big_csv)})
    cut_short.send(cut_short.body[: len(cut_short.body) // 3])
    cut_short.end_chunked()
    answer = cut_short.answer()
    assert answer.startswith("HTTP/1.1 400"), answer
    assert "body_mismatch" in answer
    digest_id = failed_id(pipeline, set())
    assert "content-digest sha-256 does not match" in left_nothing(pipeline, digest_id)
    # A Content-Length the body never reaches: the client closes its side half way.
    short = RawUpload(pipeline, big_csv)
    short.start()
    short.send(short.body[: len(short.body) // 2])
    short.sock.shutdown(socket.SHUT_WR)
    length_id = ""
    wait_until(lambda: len(upload_states(pipeline)) == 2, 30, "the second upload")
    length_id = failed_id(pipeline, {digest_id})
    wait_until(lambda: upload_states(pipeline)[length_id][0] == "failed", 30, "failed")
    error = left_nothing(pipeline, length_id)
    assert f"of the {len(short.body)} declared" in error, error
    latencies, uploads = timed_small_uploads(pipeline, tmp_path, 3, seed=3)
    verify_and_record(
        report,
        pipeline,
        "bodies that differ from their Content-Digest / Content-Length",
        2,
        uploads,
        max(latencies),
        figures="both refused, nothing downstream; then " + describe(latencies),
    )


def test_a_sender_that_dies_mid_body_leaves_nothing(
    pipeline: RunningPipeline, big_csv: Path, tmp_path: Path, report: dict[str, Any]
) -> None:
    pipeline.start_all()
    dying = RawUpload(pipeline, big_csv, chunked=True)
    dying.start()
    dying.send(dying.body[: len(dying.body) // 2])
    wait_until(lambda: bool(upload_states(pipeline)), 30, "the upload to be recorded")
    dead_id = next(iter(upload_states(pipeline)))
    dying.die()
    wait_until(lambda: upload_states(pipeline)[dead_id][0] == "failed", 30, "failed")
    assert "disconnected" in left_nothing(pipeline, dead_id)
    # One warning line naming the upload, no error and no traceback: clients do go away.
    log = (pipeline.log_dir / "ingest.jsonl").read_text()
    assert '"level":"error"' not in log
    warnings = [line for line in log.splitlines() if "upload_transfer_failed" in line]
    assert len(warnings) == 1
    assert dead_id in warnings[0]
    latencies, uploads = timed_small_uploads(pipeline, tmp_path, 3, seed=4)
    verify_and_record(
        report,
        pipeline,
        "the sender dies half way through a chunked body",
        1,
        uploads,
        max(latencies),
        figures="failed, nothing downstream; then " + describe(latencies),
    )


def test_small_uploads_do_not_wait_behind_big_ones(
    pipeline: RunningPipeline, tmp_path: Path, report: dict[str, Any]
) -> None:
    bigs = [generate.write(tmp_path / f"big-{n}.csv", 100_000, 0.1, seed=30 + n) for n in range(5)]
    pipeline.start_all()
    accepted: dict[str, Path] = {}

    def send(path: Path) -> None:
        response = upload(pipeline, path)
        assert response.status_code == 202, response.text
        accepted[response.json()["upload_id"]] = path

    threads = [threading.Thread(target=send, args=(path,)) for path in bigs]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    latencies, uploads = timed_small_uploads(pipeline, tmp_path, 20, seed=5)
    for thread in threads:
        thread.join(300)
    assert len(accepted) == 5
    token = pipeline.token("uploader")
    backlog = [
        u for u in accepted if pipeline.client.upload_status(u, token)["status"] != "complete"
    ]
    for upload_id in accepted:
        pipeline.client.wait_complete(upload_id, token, timeout_s=600)
    elapsed = time.monotonic() - started
    verify_and_record(
        report,
        pipeline,
        "5 concurrent 100k-row uploads, 20 six-row uploads during them",
        0,
        {**accepted, **uploads},
        elapsed,
        figures=(
            f"{describe(latencies)}; {len(backlog)} of 5 big uploads still"
            f" processing when the last small one completed; all 500k rows in {elapsed:.1f} s"
        ),
    )
