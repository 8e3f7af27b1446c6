"""`make bench`: the pipeline against the naive baseline and the COPY limit, in one run.

Each figure is the median of --runs runs, with the spread (min-max); ratios are taken between
figures of this same run. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from devstack import generate, postgres
from devstack.cli import start_infrastructure
from devstack.config import REPO_ROOT, StackConfig
from devstack.pipeline import Infrastructure, RunningPipeline, create_database, drop_database
from devstack.probes import (
    RawUpload,
    kill_ingest_while_publishing,
    percentile,
    timed_small_uploads,
    upload_states,
)
from devstack.processes import wait_until

from bench import baseline, kafka_clients, limit
from bench.cpu import child_pids, jit_compiler_cpu_s, process_cpu_s

RESULTS = REPO_ROOT / "bench" / "results"
DATA = RESULTS / "data"


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def dataset(rows: int, seed: int = 7) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"sales-{rows}-{seed}.csv"
    if not path.exists():
        generate.write(path, rows, 0.1, seed)
    return path


class Bench:
    def __init__(
        self,
        infra: Infrastructure,
        settings: dict[str, str] | None = None,
        validators: int = 1,
        loaders: int = 1,
    ) -> None:
        self.infra = infra
        self.settings = settings or {}
        self.validators, self.loaders = validators, loaders

    def pipeline(self, workdir: Path) -> tuple[RunningPipeline, str]:
        db = asyncio.run(create_database(self.infra.admin_dsn))
        pipeline = RunningPipeline(self.infra, db, workdir, RESULTS / "logs")
        pipeline.configure(**self.settings)
        return pipeline, db

    def finish(self, pipeline: RunningPipeline, db: str) -> None:
        pipeline.stop_all()
        pipeline.delete_topics()
        asyncio.run(drop_database(self.infra.admin_dsn, db))

    def end_to_end(self, csv: Path, rows: int) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start_all(self.validators, self.loaders)
                token = pipeline.token("operator")
                cpu_before, jit_before = self.cpu_seconds(pipeline), self.kafka_jit_s()
                started = time.perf_counter()
                response = pipeline.client.upload(csv, token)
                uploaded = time.perf_counter() - started
                pipeline.client.wait_complete(response.json()["upload_id"], token, timeout_s=1800)
                elapsed = time.perf_counter() - started
                cpu_after, jit_after = self.cpu_seconds(pipeline), self.kafka_jit_s()
                # Rows over the busy time summed over a service's instances: a rate per instance
                # (its busy time includes waiting for the others' locks), not the stage's.
                stage = {
                    name: sum(
                        metric_sum(
                            f"http://127.0.0.1:{pipeline.ports[label]}",
                            f"{name}_batch_duration_seconds_sum",
                        )
                        for label in pipeline.processes
                        if service_of(label) == name
                    )
                    for name in ("validator", "loader")
                }
            finally:
                self.finish(pipeline, db)
        return {
            "rows_per_s": rows / elapsed,
            "seconds": elapsed,
            # Where the machine's time went: CPU seconds per process for the whole file.
            "cpu_s": per_service(
                {label: cpu_after[label] - cpu_before[label] for label in cpu_after}
            ),
            "kafka_jit_s": jit_after - jit_before,
            "stage_rows_per_s": {
                "ingest": rows / uploaded,
                "validator": rows / stage["validator"] if stage["validator"] else None,
                "loader": rows / stage["loader"] if stage["loader"] else None,
            },
        }

    def kafka_pid(self) -> int:
        config = self.infra.local_stack
        assert config is not None, "the bench runs on the dev stack"
        return int((config.run_dir / "kafka.pid").read_text().split()[0])

    def kafka_jit_s(self) -> float:
        """CPU seconds the broker's JIT compiler used so far (part of its CPU): a broker
        compiles for minutes after it starts, then seldom."""
        return jit_compiler_cpu_s(self.kafka_pid())

    def cpu_seconds(self, pipeline: RunningPipeline) -> dict[str, float]:
        """CPU seconds used so far by each service, the broker and PostgreSQL (with the
        backends that already exited, which the postmaster's children times hold)."""
        config = self.infra.local_stack
        assert config is not None, "the bench runs on the dev stack"
        used = {name: process_cpu_s(p.pid) for name, p in pipeline.processes.items()}
        used["kafka"] = process_cpu_s(self.kafka_pid())
        postmaster = int((postgres.data_dir(config) / "postmaster.pid").read_text().split()[0])
        backends = 0.0
        for pid in child_pids(postmaster):
            with contextlib.suppress(FileNotFoundError):  # exited meanwhile
                backends += process_cpu_s(pid)
        used["postgres"] = process_cpu_s(postmaster, children=True) + backends
        return used

    def freshness(self, uploads: int, background: Path | None) -> list[float]:
        """POST of a 6-row file until its upload is complete, in seconds."""
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start_all(self.validators, self.loaders)
                loader: threading.Thread | None = None
                if background is not None:
                    loader = threading.Thread(
                        target=pipeline.client.upload,
                        args=(background, pipeline.token("operator")),
                    )
                    loader.start()
                latencies, _ = timed_small_uploads(
                    pipeline, Path(workdir), uploads, seed=100, poll_s=0.005
                )
                if loader is not None:
                    loader.join()
            finally:
                self.finish(pipeline, db)
        return latencies

    def isolation(self, small_uploads: int) -> dict[str, Any]:
        """6-row uploads while another uploader misbehaves or floods: a client stalled half
        way, an ingest killed while publishing (no retry), 5 concurrent 100k-row uploads."""
        results: dict[str, Any] = {}
        stall_csv = dataset(200_000, seed=11)
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start_all(self.validators, self.loaders)
                stalled = RawUpload(pipeline, stall_csv)
                stalled.start()
                stalled.send(stalled.body[: len(stalled.body) // 2])
                results["stalled_client"] = latency_summary(
                    timed_small_uploads(pipeline, Path(workdir), small_uploads, seed=201)[0]
                )
                stalled.die()
            finally:
                self.finish(pipeline, db)
        progress("isolation: dead ingest")
        big = dataset(400_000, seed=21)
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start_all(self.validators, self.loaders)
                dead, killed_at = kill_ingest_while_publishing(pipeline, big)
                latencies, _ = timed_small_uploads(pipeline, Path(workdir), small_uploads, 202)
                wait_until(lambda: upload_states(pipeline)[dead][0] == "failed", 120, "janitor")
                results["dead_ingest"] = {
                    **latency_summary(latencies),
                    "dead_upload_failed_after_s": time.monotonic() - killed_at,
                }
            finally:
                self.finish(pipeline, db)
        progress("isolation: 5 concurrent 100k-row uploads")
        bigs = [dataset(100_000, seed=30 + n) for n in range(5)]
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start_all(self.validators, self.loaders)
                token = pipeline.token("operator")
                threads = [
                    threading.Thread(target=pipeline.client.upload, args=(path, token))
                    for path in bigs
                ]
                for thread in threads:
                    thread.start()
                latencies, _ = timed_small_uploads(pipeline, Path(workdir), small_uploads * 2, 203)
                busy = sum(s == "processing" for s, _ in upload_states(pipeline).values())
                for thread in threads:
                    thread.join()
                results["concurrent_5x100k"] = {
                    **latency_summary(latencies),
                    "big_uploads_still_processing_at_the_end": busy,
                }
            finally:
                self.finish(pipeline, db)
        return results

    def dashboard(self, csv: Path, seconds: int) -> dict[str, Any]:
        """wrk on the summary of all time and of one month (served from the aggregates, the
        same cache), then the summary of ranges not read before: what a cache miss costs."""
        wrk = shutil.which("wrk")
        if wrk is None:
            return {"skipped": "wrk is not installed (apt-get install wrk)"}
        results: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start_all(self.validators, self.loaders)
                token = pipeline.token("operator")
                response = pipeline.client.upload(csv, token)
                pipeline.client.wait_complete(response.json()["upload_id"], token, timeout_s=1800)
                summary = f"{pipeline.url('dashboard')}/api/v1/summary"
                for name, query in DASHBOARD_QUERIES.items():
                    progress(f"dashboard: wrk on {name} for {seconds} s")
                    results[name] = wrk_figures(wrk, f"{summary}{query}", token, seconds)
                results["range_miss_ms"] = cache_misses(summary, token)
            finally:
                self.finish(pipeline, db)
        return results

    def ingest_memory(self, megabytes: int) -> dict[str, Any]:
        rows = megabytes * 1_000_000 // 59  # about 58.6 bytes a row: just under the 1 GiB limit
        csv = dataset(rows, seed=13)
        with tempfile.TemporaryDirectory() as workdir:
            pipeline, db = self.pipeline(Path(workdir))
            try:
                pipeline.start("loader")  # migrations only; ingest alone does the streaming
                pipeline.start("ingest")
                pipeline.start("dashboard")
                pid = pipeline.processes["ingest"].pid
                rest = rss_mb(pid)
                peak = rest
                done = threading.Event()

                def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, rss_mb(pid))
                        time.sleep(0.05)

                sampler = threading.Thread(target=sample)
                sampler.start()
                started = time.perf_counter()
                response = pipeline.client.upload(csv, pipeline.token("operator"))
                elapsed = time.perf_counter() - started
                done.set()
                sampler.join()
                if response.status_code != 202:
                    return {"error": f"{response.status_code} {response.text[:200]}"}
            finally:
                self.finish(pipeline, db)
        return {
            "file_mb": csv.stat().st_size / 2**20,
            "rss_rest_mb": rest,
            "rss_peak_mb": peak,
            "growth_mb": peak - rest,
            "ingest_rows_per_s": rows / elapsed,
        }


# The generated files' sales are dated 2026-01-01 to 2026-10-27: a month holds a tenth of them.
DASHBOARD_QUERIES = {"all_time": "", "range": "?from=2026-03-01&to=2026-03-31"}


def wrk_figures(wrk: str, url: str, token: str, seconds: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            wrk,
            "-t2",
            "-c32",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": rps,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def cache_misses(url: str, token: str, count: int = 60) -> dict[str, float]:
    """One request at a time, each for a range not asked before (7 to 66 days): the
    aggregate reads behind a summary, with nothing cached."""
    latencies = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        for n in range(count):
            started = time.perf_counter()
            response = http.get(
                url, params={"from": f"2026-02-{n % 28 + 1:02d}", "to": f"2026-04-{n % 30 + 1:02d}"}
            )
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return latency_summary(latencies)


def chart_replicas(service: str) -> int:
    """How many instances of `service` the Helm chart runs: the bench measures that topology
    (a validator or loader is one Python thread of work; on 2 cores two of each overlap)."""
    values = REPO_ROOT / "charts" / "sales-pipeline" / "charts" / service / "values.yaml"
    return int(yaml.safe_load(values.read_text())["replicas"])


def service_of(label: str) -> str:
    """The service a process label names: "validator-2" is the second validator."""
    return label.split("-", 1)[0]


def per_service(by_label: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for label, value in by_label.items():
        totals[service_of(label)] = totals.get(service_of(label), 0.0) + value
    return totals


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def latency_summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "n": len(latencies),
    }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric_sum(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def repeat(runs: int, measure: Callable[[], float]) -> dict[str, float]:
    return spread([measure() for _ in range(runs)])


SECTIONS = ("pipeline", "limits", "kafka", "freshness", "isolation", "dashboard", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=50_000,
        help="the baseline's rate is measured on a prefix: one INSERT a row is slow",
    )
    parser.add_argument(
        "--warmup-runs",
        type=int,
        default=2,
        help="unmeasured pipeline runs first: a broker just started spends seconds of CPU per"
        " 1M rows JIT-compiling through its first few million records, which a broker that"
        " has been running does not",
    )
    parser.add_argument("--kafka-records", type=int, default=300_000)
    parser.add_argument("--freshness-uploads", type=int, default=200)
    parser.add_argument("--small-uploads", type=int, default=20, help="per isolation scenario")
    parser.add_argument("--dashboard-seconds", type=int, default=15)
    parser.add_argument("--ingest-mb", type=int, default=1024)
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)} (an A/B needs only 'pipeline')",
    )
    parser.add_argument("--out", default="latest", help="results/<out>.json and .md")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the services (an A/B of one lever): without a prefix for every "
        "service, with one for that service, e.g. INGEST_UPLOADS__ROWS_PER_RECORD=1",
    )
    for service in ("validator", "loader"):
        parser.add_argument(
            f"--{service}s",
            type=int,
            default=chart_replicas(service),
            help=f"{service} processes in every section (default: the chart's replicas)",
        )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    bootstrap, dsn = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if bootstrap and dsn:  # a broker and database that run already, as for the tests
        progress(f"using Kafka at {bootstrap} and the database of DATABASE_URL")
        infra = Infrastructure(bootstrap, dsn)
    else:
        progress("starting Kafka and PostgreSQL")
        config = StackConfig()
        start_infrastructure(config)
        infra = Infrastructure(config.bootstrap_servers, postgres.superuser_dsn(config), config)
    bench = Bench(
        infra, dict(item.split("=", 1) for item in args.set), args.validators, args.loaders
    )
    csv = dataset(args.rows)
    small = dataset(args.baseline_rows)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d"),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
        },
        "rows": args.rows,
        "settings": args.set,
        "instances": {"validator": args.validators, "loader": args.loaders},
    }

    def save() -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2))

    if "pipeline" in sections:
        for run in range(args.warmup_runs):
            progress(f"pipeline warm-up {run + 1}/{args.warmup_runs}, not measured")
            warmup = bench.end_to_end(csv, args.rows)
            progress(
                f"  {warmup['rows_per_s']:,.0f} rows/s, the broker's JIT compiler"
                f" {warmup['kafka_jit_s']:.1f} CPU s"
            )
        pipeline_runs = []
        for run in range(args.runs):
            progress(f"pipeline end to end, {args.rows:,} rows, run {run + 1}/{args.runs}")
            pipeline_runs.append(bench.end_to_end(csv, args.rows))
            progress(f"  {pipeline_runs[-1]['rows_per_s']:,.0f} rows/s")
        results["pipeline"] = spread([r["rows_per_s"] for r in pipeline_runs])
        results["stages"] = {
            stage: spread(
                [
                    r["stage_rows_per_s"][stage]
                    for r in pipeline_runs
                    if r["stage_rows_per_s"][stage]
                ]
            )
            for stage in ("ingest", "validator", "loader")
        }
        results["cpu_s_per_million_rows"] = {
            name: statistics.median(r["cpu_s"][name] * 1e6 / args.rows for r in pipeline_runs)
            for name in pipeline_runs[0]["cpu_s"]
        }
        results["kafka_jit_cpu_s_per_million_rows"] = statistics.median(
            r["kafka_jit_s"] * 1e6 / args.rows for r in pipeline_runs
        )
        results["warmup_runs"] = args.warmup_runs
        save()

    def with_db(measure: Callable[[str], tuple[int, float]]) -> float:
        db = asyncio.run(create_database(infra.admin_dsn))
        try:
            rows, seconds = measure(db)
        finally:
            asyncio.run(drop_database(infra.admin_dsn, db))
        return rows / seconds

    if "limits" in sections:
        progress("baseline (pandas, one INSERT a row) and the COPY limit")
        results["baseline"] = repeat(
            args.runs, lambda: with_db(lambda db: baseline.measure(small, db))
        )
        results["limit"] = repeat(args.runs, lambda: with_db(lambda db: limit.measure(csv, db)))
        if "pipeline" in results:
            results["ratios"] = {
                "pipeline_over_baseline": results["pipeline"]["median"]
                / results["baseline"]["median"],
                "pipeline_over_limit": results["pipeline"]["median"] / results["limit"]["median"],
            }
        save()
    if "kafka" in sections:
        progress(f"Kafka clients and batch sizes, {args.kafka_records:,} records")
        results["kafka"] = kafka_clients.measure(args.kafka_records, args.runs)
        results["kafka_records"] = args.kafka_records
        save()
    if "freshness" in sections:
        progress(f"freshness: {args.freshness_uploads} six-row uploads, idle")
        idle = bench.freshness(args.freshness_uploads, None)
        progress("freshness: six-row uploads during a 1M-row upload")
        busy = bench.freshness(max(args.freshness_uploads // 4, 20), csv)
        results["freshness_ms"] = {
            "idle": latency_summary(idle),
            "during_load": latency_summary(busy),
        }
        save()
    if "isolation" in sections:
        progress("isolation: a stalled client")
        results["isolation_ms"] = bench.isolation(args.small_uploads)
        save()
    if "dashboard" in sections:
        progress(f"dashboard: wrk for {args.dashboard_seconds} s")
        results["dashboard"] = bench.dashboard(csv, args.dashboard_seconds)
        save()
    if "memory" in sections:
        progress(f"ingest memory: a {args.ingest_mb} MB upload")
        results["ingest_memory"] = bench.ingest_memory(args.ingest_mb)
        save()
    table = markdown(results)
    (RESULTS / f"{args.out}.md").write_text(table)
    print(table)


def markdown(r: dict[str, Any]) -> str:
    def f(stat: dict[str, float]) -> str:
        return f"{stat['median']:,.0f} ({stat['min']:,.0f}-{stat['max']:,.0f}, n={stat['n']})"

    def lat(stat: dict[str, float]) -> str:
        return f"{stat['p50_ms']:.0f} / {stat['p99_ms']:.0f} / {stat['max_ms']:.0f} (n={stat['n']})"

    m = r["machine"]
    lines = [
        f"Machine: {m['cpus']} cores, Python {m['python']}, {m['platform']}, {m['date']}, commit {m['commit']}.",
        *(
            [f"Instances: {n['validator']} validators, {n['loader']} loaders (one of the others)."]
            if (n := r.get("instances"))
            else []
        ),
        *([f"Settings: {', '.join(r['settings'])}.", ""] if r.get("settings") else [""]),
        "| figure | value |",
        "|---|---|",
    ]
    if "pipeline" in r:
        lines += [
            f"| pipeline end to end, {r['rows']:,} rows, rows/s (median, min-max) | {f(r['pipeline'])} |",
            f"| stage: ingest → sales.raw, rows/s | {f(r['stages']['ingest'])} |",
            f"| stage: validator (busy time, summed over instances), rows/s | {f(r['stages']['validator'])} |",
            f"| stage: loader (busy time, summed over instances), rows/s | {f(r['stages']['loader'])} |",
            "| CPU seconds per 1M rows, end to end (median) | "
            + ", ".join(f"{n} {s:.1f}" for n, s in r["cpu_s_per_million_rows"].items())
            + f"; total {sum(r['cpu_s_per_million_rows'].values()):.1f} |",
            f"| of which the broker's JIT compiler, CPU s per 1M rows (median; after"
            f" {r['warmup_runs']} unmeasured run(s)) | {r['kafka_jit_cpu_s_per_million_rows']:.1f} |",
        ]
    if "baseline" in r:
        lines += [
            f"| baseline (pandas, row-by-row, one INSERT a row), rows/s | {f(r['baseline'])} |",
            f"| limit (COPY of the CSV), rows/s | {f(r['limit'])} |",
        ]
    if "ratios" in r:
        lines += [
            f"| pipeline / baseline | {r['ratios']['pipeline_over_baseline']:.1f}x |",
            f"| pipeline / limit | {r['ratios']['pipeline_over_limit']:.3f} |",
        ]
    if "freshness_ms" in r:
        fresh = r["freshness_ms"]
        lines += [
            f"| 6-row upload to complete, idle: p50 / p99 / max ms | {lat(fresh['idle'])} |",
            f"| 6-row upload to complete, during a {r['rows']:,}-row upload: p50 / p99 / max ms | {lat(fresh['during_load'])} |",
        ]
    if "isolation_ms" in r:
        iso = r["isolation_ms"]
        lines += [
            f"| 6-row upload while a client is stalled half way through 200k rows: p50 / p99 / max ms | {lat(iso['stalled_client'])} |",
            f"| 6-row upload after ingest was killed publishing 400k rows (no retry): p50 / p99 / max ms | {lat(iso['dead_ingest'])} |",
            f"| the dead upload marked failed after, s | {iso['dead_ingest']['dead_upload_failed_after_s']:.1f} |",
            f"| 6-row upload during 5 concurrent 100k-row uploads: p50 / p99 / max ms | {lat(iso['concurrent_5x100k'])} ({iso['concurrent_5x100k']['big_uploads_still_processing_at_the_end']} of 5 big ones still processing at the end) |",
        ]
    dash = r.get("dashboard")
    if dash and "skipped" in dash:
        lines.append(f"| dashboard | skipped: {dash['skipped']} |")
    elif dash:
        for name, what in (("all_time", "all time"), ("range", "one month (from/to)")):
            d = dash[name]
            lines.append(
                f"| dashboard summary, {what}, {r['rows']:,} rows, idle, 32 connections: requests/s, p99 ms | {d['requests_per_s']:,.0f}, {d['p99_ms']:.1f} (non-2xx {d['non_2xx']}) |"
            )
        lines.append(
            f"| dashboard summary of a range not cached, one at a time: p50 / p99 / max ms | {lat(dash['range_miss_ms'])} |"
        )
    mem = r.get("ingest_memory")
    if mem and "error" in mem:
        lines.append(f"| ingest RSS | failed: {mem['error']} |")
    elif mem:
        lines.append(
            f"| ingest RSS, {mem['file_mb']:,.0f} MB file: rest -> peak (growth) MB, rows/s | {mem['rss_rest_mb']:.0f} -> {mem['rss_peak_mb']:.0f} ({mem['growth_mb']:.0f}), {mem['ingest_rows_per_s']:,.0f} |"
        )
    if "kafka" in r:
        lines += ["", kafka_clients.markdown(r["kafka"], r["kafka_records"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
