"""Exactly once under faults: real broker, real database, real service processes.

Each test streams a generated 200,000-row file, injects its fault repeatedly, then asks the
independent checker: every row of every accepted upload is in exactly one of `sales` or
`rejections`, totals match the CSV, and a read_committed reader of sales.validated sees each
event once. Fault timing is random (seeded per run and printed); waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from devstack import generate
from devstack import kafka as local_kafka
from devstack import postgres as local_postgres
from devstack.pipeline import RunningPipeline
from devstack.probes import RawUpload
from devstack.processes import wait_until
from devstack.secrets import load_or_create
from devstack.services import ready

from tests.reliability.checker import check

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
SEED = random.randrange(1 << 30)
rng = random.Random(SEED)


def upload(pipeline: RunningPipeline, path: Path, key: str | None = None) -> httpx.Response:
    return pipeline.client.upload(path, pipeline.token("uploader"), idempotency_key=key)


def start_and_upload(pipeline: RunningPipeline, path: Path) -> str:
    """Start the services, upload `path` (accepted), return its upload id."""
    pipeline.start_all()
    response = upload(pipeline, path)
    assert response.status_code == 202, response.text
    return str(response.json()["upload_id"])


def upload_more(
    pipeline: RunningPipeline, files: dict[str, Path], directory: Path, seed: int
) -> None:
    """One more file of 200,000 rows uploaded (accepted), added to `files` (upload id ->
    file): a fault must land while rows are loading, and how long a load lasts depends on the
    machine."""
    path = generate.write(directory / f"more-{seed}.csv", 200_000, 0.1, seed=seed)
    response = upload(pipeline, path)
    assert response.status_code == 202, response.text
    files[str(response.json()["upload_id"])] = path


def loaded(pipeline: RunningPipeline, files: dict[str, Path]) -> bool:
    return all(status(pipeline, u) == "complete" for u in files)


def status(pipeline: RunningPipeline, upload_id: str) -> str:
    try:
        return str(pipeline.client.upload_status(upload_id, pipeline.token("uploader"))["status"])
    except httpx.HTTPError:
        return "unknown"


def wait_complete(
    pipeline: RunningPipeline, upload_ids: list[str], timeout_s: float = 300
) -> float:
    started = time.monotonic()
    token = pipeline.token("uploader")
    for upload_id in upload_ids:
        pipeline.client.wait_complete(upload_id, token, timeout_s=timeout_s)
    return time.monotonic() - started


def verify_and_record(
    report: dict[str, Any],
    pipeline: RunningPipeline,
    fault: str,
    injected: int,
    uploads: dict[str, Path],
    recovery_s: float,
    figures: str = "",
) -> None:
    """Ask the independent checker about `uploads`; no loss, no duplicate; report the run."""
    verdict = asyncio.run(check(pipeline.database, pipeline.kafka, uploads))
    assert verdict.problems == [], f"seed {SEED}: {verdict.problems}"
    assert (verdict.lost, verdict.duplicated) == (0, 0), f"seed {SEED}"
    report.update(
        fault=fault,
        injected=injected,
        rows=verdict.rows,
        lost=verdict.lost,
        duplicated=verdict.duplicated + verdict.topic_duplicates,
        recovery_s=recovery_s,
        figures=figures,
        seed=SEED,
    )


def kill_repeatedly(pipeline: RunningPipeline, label: str, upload_id: str, times: int) -> int:
    """kill -9 `label` at random moments while the upload is still being processed."""
    name, _, rest = label.partition("-")
    instance = f"-{rest}" if rest else ""
    kills = 0
    while kills < times:
        time.sleep(rng.uniform(0.2, 1.2))  # a random moment, not a synchronisation
        if status(pipeline, upload_id) == "complete":
            break
        pipeline.kill(label)
        kills += 1
        pipeline.start(name, instance, wait=False)
    return kills


@pytest.mark.parametrize("service", ["loader", "validator"])
def test_kill_repeatedly(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any], service: str
) -> None:
    upload_id = start_and_upload(pipeline, big_csv)
    kills = kill_repeatedly(pipeline, service, upload_id, 10)
    assert kills >= 10, f"the load finished after {kills} kills"
    recovery = wait_complete(pipeline, [upload_id])
    verify_and_record(report, pipeline, f"kill -9 {service}", kills, {upload_id: big_csv}, recovery)


def test_two_of_each_with_one_killed(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any]
) -> None:
    pipeline.start_all(validators=2, loaders=2)
    response = upload(pipeline, big_csv)
    assert response.status_code == 202
    upload_id = response.json()["upload_id"]
    injected = 0
    for label in ("validator-2", "loader-2", "validator-2", "loader-2"):
        time.sleep(rng.uniform(0.5, 2.0))
        name, _, rest = label.partition("-")
        pipeline.kill(label)
        pipeline.start(name, f"-{rest}", wait=False)
        injected += 1
    recovery = wait_complete(pipeline, [upload_id])
    verify_and_record(
        report,
        pipeline,
        "2 validators + 2 loaders, one of each kill -9",
        injected,
        {upload_id: big_csv},
        recovery,
    )


def test_validators_and_loaders_join_and_leave_under_load(
    pipeline: RunningPipeline, tmp_path: Path, report: dict[str, Any]
) -> None:
    """Rebalance after rebalance while an upload is processed: up to three validators and
    two loaders join, leave cleanly (SIGTERM) or die (kill -9). A validator that lost its
    partitions carries an older group generation, so its transaction is refused (KIP-447);
    the loaders' offsets live with their rows. Every step comes while an upload is being
    processed: a file of 200,000 rows more goes in right before a step that would find the
    load done (600,000 rows outlasted the ten steps on one machine and not on another)."""
    csv = generate.write(tmp_path / "rebalances.csv", 600_000, 0.1, seed=13)
    files = {start_and_upload(pipeline, csv): csv}
    steps = [
        ("join", "validator", "-2"),
        ("join", "loader", "-2"),
        ("join", "validator", "-3"),
        ("leave", "validator", ""),
        ("die", "validator", "-2"),
        ("leave", "loader", ""),
        ("join", "validator", ""),
        ("die", "loader", "-2"),
        ("join", "loader", ""),
        ("leave", "validator", "-3"),
    ]
    for step, (action, name, instance) in enumerate(steps):
        time.sleep(rng.uniform(0.3, 1.0))  # a random moment, not a synchronisation
        if loaded(pipeline, files):
            upload_more(pipeline, files, tmp_path, seed=40 + step)
        if action == "join":
            pipeline.start(name, instance, wait=False)
        else:
            pipeline.signal(
                name + instance, signal.SIGTERM if action == "leave" else signal.SIGKILL
            )
    recovery = wait_complete(pipeline, list(files))
    verify_and_record(
        report,
        pipeline,
        "3 validators + 2 loaders join, leave, die (rebalances)",
        len(steps),
        files,
        recovery,
    )


def _local(pipeline: RunningPipeline) -> Any:
    if pipeline.infrastructure.local_stack is None:
        pytest.skip("needs the dev-stack broker and database, which this test restarts")
    return pipeline.infrastructure.local_stack


def test_restart_kafka_during_load(
    pipeline: RunningPipeline, big_csv: Path, tmp_path: Path, report: dict[str, Any]
) -> None:
    config = _local(pipeline)
    first = start_and_upload(pipeline, big_csv)
    time.sleep(rng.uniform(1.0, 3.0))
    local_kafka.stop(config)
    small = tmp_path / "during-outage.csv"
    from devstack import generate

    generate.write(small, 1000, 0.1, seed=99)
    key = str(uuid.uuid4())
    refused = upload(pipeline, small, key)
    assert refused.status_code == 503
    assert "retry-after" in refused.headers
    down_at = time.monotonic()
    local_kafka.start(config)
    wait_until(lambda: ready(pipeline.url("ingest")), 120, "ingest ready after the broker restart")
    retried = upload(pipeline, small, key)
    assert retried.status_code == 202, retried.text
    second = retried.json()["upload_id"]
    wait_complete(pipeline, [first, second])
    recovery = time.monotonic() - down_at
    verify_and_record(
        report,
        pipeline,
        "Kafka broker restart",
        1,
        {first: big_csv, second: small},
        recovery,
    )


def test_restart_postgres_during_load(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any]
) -> None:
    config = _local(pipeline)
    upload_id = start_and_upload(pipeline, big_csv)
    restarts = 0
    while restarts < 3:
        time.sleep(rng.uniform(0.5, 2.0))  # a random moment, not a synchronisation
        local_postgres.stop(config)
        down_at = time.monotonic()
        restarts += 1
        wait_until(lambda: not ready(pipeline.url("loader")), 30, "loader readiness to turn 503")
        local_postgres.start(config, load_or_create(config.secrets_file).postgres_password)
        wait_until(lambda: ready(pipeline.url("loader")), 60, "loader readiness back to 200")
        if status(pipeline, upload_id) == "complete":
            break
    wait_complete(pipeline, [upload_id])
    recovery = time.monotonic() - down_at

    def lag_is_zero() -> bool:
        lines = [
            line
            for line in httpx.get(f"{pipeline.url('loader')}/metrics").text.splitlines()
            if line.startswith("loader_consumer_lag_records{")
        ]
        return bool(lines) and all(line.endswith(" 0.0") for line in lines)

    wait_until(lag_is_zero, 30, "loader lag back to 0")
    verify_and_record(
        report, pipeline, "PostgreSQL restart", restarts, {upload_id: big_csv}, recovery
    )


def _fetch(pipeline: RunningPipeline, sql: str) -> list[asyncpg.Record]:
    """One query on the pipeline's database, on a connection of its own."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pipeline.database)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


class _LoaderStatementCutter:
    """pg_terminate_backend on the loader's connections that are running a statement: the
    statement fails with AdminShutdownError, as it does when PostgreSQL shuts down. One
    connection for every look: connecting anew each time (~10 ms) let the loader's short
    statements run between two looks."""

    _CUT = (
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'loader'"
        " AND state = 'active' AND pid <> pg_backend_pid()"
    )

    def __init__(self, pipeline: RunningPipeline) -> None:
        self._loop = asyncio.new_event_loop()
        self._conn = self._loop.run_until_complete(asyncpg.connect(pipeline.database))

    def cut(self) -> int:
        return int(self._loop.run_until_complete(self._conn.fetchval(self._CUT)))

    def close(self) -> None:
        self._loop.run_until_complete(self._conn.close())
        self._loop.close()


def test_terminate_loader_statements_during_load(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any], tmp_path: Path
) -> None:
    """Files of 200,000 rows, the loader's statements looked at every 1-5 ms until ten were
    cut: three files at first, then one more whenever the load is done before that (the
    loader's statements keep getting shorter: a straight COPY into sales lasted 8-9 cuts over
    three files, its 10,000-record batches 4)."""
    files = {start_and_upload(pipeline, big_csv): big_csv}
    for seed in (12, 13):
        upload_more(pipeline, files, tmp_path, seed)
    hits, looked_at_uploads = 0, time.monotonic()
    cutter = _LoaderStatementCutter(pipeline)
    try:
        while hits < 10:
            if time.monotonic() - looked_at_uploads > 0.2:  # a status is an HTTP request each
                looked_at_uploads = time.monotonic()
                if loaded(pipeline, files):
                    assert len(files) < 10, f"ten files loaded with {hits} statements cut"
                    upload_more(pipeline, files, tmp_path, seed=len(files) + 11)
            hits += cutter.cut()
            time.sleep(rng.uniform(0.001, 0.005))  # a random moment, not a synchronisation
    finally:
        cutter.close()
    wait_until(lambda: ready(pipeline.url("loader")), 30, "loader ready after the cuts")
    recovery = wait_complete(pipeline, list(files))
    verify_and_record(
        report,
        pipeline,
        "PostgreSQL ends the loader's statements (pg_terminate_backend)",
        hits,
        files,
        recovery,
    )


def test_kill_ingest_mid_upload_then_retry(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any]
) -> None:
    """kill -9 of ingest while it receives an upload (at a random point of the body: a timed
    kill raced an ingest that takes a 200k-row upload in under a second), then the client's
    retry with the same Idempotency-Key. Killed while publishing: test_isolation."""
    pipeline.start_all()
    key = str(uuid.uuid4())
    client = RawUpload(pipeline, big_csv)
    client.start(**{"Idempotency-Key": key})
    client.send(client.body[: int(len(client.body) * rng.uniform(0.2, 0.9))])
    wait_until(lambda: "receiving" in _statuses(pipeline), 30, "the upload to start")
    pipeline.kill("ingest")
    try:
        answer = client.answer(timeout_s=30)
    except ConnectionError:  # reset: the kernel closed the dead process's socket
        answer = ""
    assert answer == "", f"a killed ingest answers nothing, got {answer[:200]!r}"
    pipeline.start("ingest")
    killed_at = time.monotonic()
    retried = upload(pipeline, big_csv, key)
    assert retried.status_code == 202, retried.text
    upload_id = retried.json()["upload_id"]
    wait_complete(pipeline, [upload_id])
    verify_and_record(
        report,
        pipeline,
        "kill -9 ingest mid-upload, retry with Idempotency-Key",
        1,
        {upload_id: big_csv},
        time.monotonic() - killed_at,
    )


def _statuses(pipeline: RunningPipeline) -> set[str]:
    return {r["status"] for r in _fetch(pipeline, "SELECT status FROM uploads")}


def test_sigterm_every_service_under_load(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any]
) -> None:
    upload_id = start_and_upload(pipeline, big_csv)
    started = time.monotonic()
    for name in ("validator", "loader", "dashboard", "ingest"):
        time.sleep(rng.uniform(0.3, 1.5))
        code = pipeline.signal(name, signal.SIGTERM)
        assert code == 0, f"{name} exited {code} on SIGTERM"
        pipeline.start(name)
    wait_complete(pipeline, [upload_id])
    verify_and_record(
        report,
        pipeline,
        "SIGTERM each service",
        4,
        {upload_id: big_csv},
        time.monotonic() - started,
    )


def test_poison_records_are_rejected_and_consumers_keep_going(
    pipeline: RunningPipeline, big_csv: Path, report: dict[str, Any]
) -> None:
    from tests.helpers import produce

    pipeline.start_all()
    poison = [(None, b"\xff\xfe not json"), (b"k", b'{"schema_version": 99}'), (b"k", b"[]")]
    asyncio.run(produce(pipeline.kafka, pipeline.topics.raw, poison))
    asyncio.run(produce(pipeline.kafka, pipeline.topics.validated, poison))
    response = upload(pipeline, big_csv)
    assert response.status_code == 202
    upload_id = response.json()["upload_id"]
    asyncio.run(produce(pipeline.kafka, pipeline.topics.raw, poison))
    recovery = wait_complete(pipeline, [upload_id])

    async def unreadable() -> int:
        import asyncpg

        conn = await asyncpg.connect(pipeline.database)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM rejections WHERE upload_id IS NULL"
                    ' AND violations @> \'[{"rule": "unreadable"}]\''
                )
            )
        finally:
            await conn.close()

    wait_until(lambda: asyncio.run(unreadable()) == 9, 30, "9 poison records in rejections")
    verify_and_record(
        report,
        pipeline,
        "poison records in sales.raw and sales.validated",
        9,
        {upload_id: big_csv},
        recovery,
    )
