"""sales-pipeline: upload CSV files, follow them through the pipeline, read the summary.

    sales-pipeline upload FILE... [--wait] [--idempotency-key K] [--json]
    sales-pipeline status UPLOAD_ID [--json]
    sales-pipeline summary [--json]
    sales-pipeline sync DIR [--min-age S] [--every S] [--json]   (a folder's new CSV files)

Endpoint and credentials come from the environment (SALES_INGEST_URL, SALES_DASHBOARD_URL,
SALES_CLIENT_ID, SALES_CLIENT_SECRET) or from a JSON config file (--config, default
~/.config/sales-pipeline/config.json) with the same keys in lower case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import httpx

from sales_cli.client import PipelineClient
from sales_cli.sync import AlreadyRunning, sync_folder

# Exit codes, one per kind of failure a script may want to tell apart.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_TOO_LARGE, EXIT_INVALID, EXIT_UNAVAILABLE = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
)
_STATUS_EXIT = {
    401: EXIT_AUTH,
    403: EXIT_AUTH,
    413: EXIT_TOO_LARGE,
    415: EXIT_INVALID,
    422: EXIT_INVALID,
    503: EXIT_UNAVAILABLE,
}
_STATUS_HINT = {
    401: "authentication failed: check SALES_CLIENT_ID / SALES_CLIENT_SECRET",
    403: "this client lacks the scope for that (uploads:write, sales:read or admin)",
    413: "the file is larger than the server accepts",
    415: "the server refused the content type or encoding",
    422: "the file was refused",
    503: "the pipeline is unavailable right now; retry later with the same --idempotency-key",
}
DEFAULT_CONFIG = Path.home() / ".config" / "sales-pipeline" / "config.json"


@dataclass(frozen=True)
class Config:
    ingest_url: str
    dashboard_url: str
    client_id: str
    client_secret: str

    @classmethod
    def load(cls, path: Path | None) -> Config:
        values: dict[str, str] = {}
        config_file = path or DEFAULT_CONFIG
        if config_file.exists():
            values.update(
                {k.lower(): str(v) for k, v in json.loads(config_file.read_text()).items()}
            )
        elif path is not None:
            raise SystemExit(f"sales-pipeline: config file {path} not found")
        for key in ("ingest_url", "dashboard_url", "client_id", "client_secret"):
            if env := os.environ.get(f"SALES_{key.upper()}"):
                values[key] = env
        values.setdefault("ingest_url", "http://127.0.0.1:8001")
        values.setdefault("dashboard_url", "http://127.0.0.1:8004")
        missing = [k for k in ("client_id", "client_secret") if not values.get(k)]
        if missing:
            raise SystemExit(
                "sales-pipeline: set " + " and ".join(f"SALES_{m.upper()}" for m in missing)
            )
        return cls(**values)


class Progress:
    """One line on stderr, redrawn in place when stderr is a terminal."""

    def __init__(self, label: str, total: float | None, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.tty = stream.isatty()
        self._last = 0.0

    def update(self, done: float, detail: str = "", final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.1 if self.tty else 2.0):
            return
        self._last = now
        bar = ""
        if self.total:
            share = min(done / self.total, 1.0)
            bar = f"[{'#' * int(share * 30):<30}] {share:6.1%} "
        line = f"{self.label:<10} {bar}{detail}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final or not self.tty:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fail(response: httpx.Response) -> int:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:300]
    hint = _STATUS_HINT.get(response.status_code, "the request failed")
    print(f"sales-pipeline: {response.status_code}: {hint}: {detail}", file=sys.stderr)
    return _STATUS_EXIT.get(response.status_code, EXIT_FAILED)


def _table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _show_sent(bar: Progress, sent: int, lines: int) -> None:
    bar.update(sent, f"{sent / 2**20:,.1f} MB, ~{max(lines - 1, 0):,} rows")


def _show_processed(bar: Progress, status: dict[str, Any]) -> None:
    done = status["valid_count"] + status["rejected_count"]
    bar.update(done, f"{status['valid_count']:,} valid, {status['rejected_count']:,} rejected")


def upload(client: PipelineClient, config: Config, args: argparse.Namespace) -> int:
    token = client.token(config.client_id, config.client_secret)
    results = []
    for path in args.files:
        if not path.exists():
            print(f"sales-pipeline: {path}: no such file", file=sys.stderr)
            return EXIT_USAGE
        sending = Progress("upload", path.stat().st_size)
        key = args.idempotency_key or str(uuid.uuid4())
        response = client.upload(
            path,
            token,
            idempotency_key=key,
            on_chunk=partial(_show_sent, sending),
        )
        if response.status_code >= 400:
            return _fail(response)
        accepted = response.json()
        sending.update(path.stat().st_size, f"{accepted['rows']:,} rows accepted", final=True)
        status = client.upload_status(accepted["upload_id"], token)
        if args.wait:
            processing = Progress("process", accepted["rows"] or None)
            status = client.wait_complete(
                accepted["upload_id"],
                token,
                timeout_s=args.timeout,
                poll_s=0.2,
                on_status=partial(_show_processed, processing),
            )
            processing.update(
                status["valid_count"] + status["rejected_count"], status["status"], final=True
            )
        results.append(
            {
                **status,
                "file": str(path),
                "duplicate": accepted["duplicate"],
                "idempotency_key": key,
            }
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(
                _table(
                    [
                        ("file", r["file"]),
                        ("upload_id", r["upload_id"]),
                        ("status", r["status"]),
                        ("duplicate", r["duplicate"]),
                        ("rows", r["rows_total"]),
                        ("valid", r["valid_count"]),
                        ("rejected", r["rejected_count"]),
                        ("valid amount", r["valid_amount"]),
                    ]
                )
            )
    return EXIT_FAILED if any(r["status"] == "failed" for r in results) else EXIT_OK


def status(client: PipelineClient, config: Config, args: argparse.Namespace) -> int:
    token = client.token(config.client_id, config.client_secret)
    result = client.upload_status(args.upload_id, token)
    print(json.dumps(result, indent=2) if args.json else _table(list(result.items())))
    return EXIT_OK


def summary(client: PipelineClient, config: Config, args: argparse.Namespace) -> int:
    token = client.token(config.client_id, config.client_secret)
    result = client.summary(token)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(
        _table(
            [
                ("total sales", result["total_sales"]),
                ("valid rows", result["valid_count"]),
                ("rejected rows", result["rejected_count"]),
            ]
        )
    )
    if result["products"]:
        print("\nproduct" + " " * 25 + "amount      qty  sales")
        for p in result["products"]:
            amount, qty, count = p["total_amount"], p["quantity"], p["sales_count"]
            print(f"{p['product'][:30]:<30} {amount:>10} {qty:>6} {count:>6}")
    if result["rejections_by_rule"]:
        print(
            "\nrejections by rule: "
            + ", ".join(f"{k} {v}" for k, v in result["rejections_by_rule"].items())
        )
    return EXIT_OK


def sync(client: PipelineClient, config: Config, args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        print(f"sales-pipeline: {args.folder}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    if not args.every:
        return sync_once(client, config, args)
    while True:  # a schedule for hosts without one (the compose profile); stopped by a signal
        started = time.monotonic()
        try:
            sync_once(client, config, args)
        except httpx.HTTPError as exc:  # the pipeline down at this turn: the next one retries
            print(f"sales-pipeline: sync failed: {exc}", file=sys.stderr)
        time.sleep(max(args.every - (time.monotonic() - started), 0))


def sync_once(client: PipelineClient, config: Config, args: argparse.Namespace) -> int:
    token = client.token(config.client_id, config.client_secret)
    try:
        results = sync_folder(client, token, args.folder, args.min_age, args.timeout)
    except AlreadyRunning:
        print(f"sales-pipeline: a sync of {args.folder} is running already", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps([vars(r) for r in results], indent=2))
    else:
        for r in results:
            counts = (
                f" ({r.rows:,} rows: {r.valid:,} valid, {r.rejected:,} rejected)"
                if r.rows is not None
                else ""
            )
            print(f"{r.outcome:<12} {r.file}: {r.detail}{counts}")
        outcomes = [r.outcome for r in results]
        print(
            f"{len(results)} file(s): {outcomes.count('done')} done, "
            f"{outcomes.count('failed')} failed, "
            f"{outcomes.count('retry later')} left for the next run"
        )
    if any(r.outcome == "retry later" for r in results):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED if any(r.outcome == "failed" for r in results) else EXIT_OK


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="sales-pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload", help="stream CSV files into the pipeline")
    up.add_argument("files", nargs="+", type=Path)
    up.add_argument("--wait", action="store_true", help="follow processing until complete")
    up.add_argument("--idempotency-key", help="retry-safe key (one file only)")
    up.add_argument("--timeout", type=float, default=1800)
    up.add_argument("--json", action="store_true")
    st = sub.add_parser("status", help="one upload's status")
    st.add_argument("upload_id")
    st.add_argument("--json", action="store_true")
    sm = sub.add_parser("summary", help="the dashboard summary")
    sm.add_argument("--json", action="store_true")
    sy = sub.add_parser(
        "sync", help="upload the new CSV files of a folder, move them to done/ or failed/"
    )
    sy.add_argument("folder", type=Path)
    sy.add_argument(
        "--min-age", type=float, default=60.0, help="skip files written to in the last S seconds"
    )
    sy.add_argument("--timeout", type=float, default=1800, help="per file, until processed")
    sy.add_argument("--json", action="store_true")
    sy.add_argument(
        "--every", type=float, default=0, help="run again every S seconds until stopped"
    )
    args = parser.parse_args()
    if args.command == "upload" and args.idempotency_key and len(args.files) > 1:
        parser.error("--idempotency-key applies to one file")
    config = Config.load(args.config)
    client = PipelineClient(config.ingest_url, config.dashboard_url, timeout_s=600)
    commands = {"upload": upload, "status": status, "summary": summary, "sync": sync}
    try:
        code = commands[args.command](client, config, args)
    except httpx.HTTPStatusError as exc:
        code = _fail(exc.response)
    except httpx.TransportError as exc:
        print(f"sales-pipeline: cannot reach the pipeline: {exc}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    finally:
        client.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
