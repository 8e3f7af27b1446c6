"""devstack: run the whole pipeline on this machine without containers.

devstack up        start Kafka, PostgreSQL, topics, migrations and the four services
devstack down      stop everything, keep the data
devstack run       up, upload data/sales.csv, wait, print the dashboard summary
devstack status    what runs where
devstack clean     down and delete .stack (data, logs, jars, secrets)
devstack schemas   write docs/schemas/*.json from the contracts (--check: fail if stale)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

from sales_common.events import TOPIC_MODELS
from sales_common.kafka import ensure_topics, with_backoff
from sales_common.settings import KafkaSettings, PostgresSettings

from devstack import generate, kafka, postgres, processes, services
from devstack.client import PipelineClient
from devstack.config import REPO_ROOT, StackConfig
from devstack.secrets import StackSecrets, load_or_create

SCHEMA_DIR = REPO_ROOT / "docs" / "schemas"


def default_endpoints(config: StackConfig, secrets: StackSecrets) -> services.Endpoints:
    return services.Endpoints(
        bootstrap_servers=config.bootstrap_servers,
        database_url=(
            f"postgresql://sales:{secrets.postgres_password}@{config.host}:{config.postgres_port}/sales"
        ),
    )


def start_infrastructure(config: StackConfig) -> StackSecrets:
    """Kafka and PostgreSQL running, topics created, schema migrated. Idempotent."""
    secrets = load_or_create(config.secrets_file)
    kafka.start(config)
    postgres.start(config, secrets.postgres_password)
    endpoints = default_endpoints(config, secrets)
    asyncio.run(_prepare(endpoints))
    return secrets


async def _prepare(endpoints: services.Endpoints) -> None:
    from loader.migrations import migrate
    from pydantic import SecretStr

    kafka_settings = KafkaSettings(bootstrap_servers=endpoints.bootstrap_servers)
    await with_backoff(lambda: ensure_topics(kafka_settings), "create topics", attempts=30, max_s=2)
    await migrate(PostgresSettings(dsn=SecretStr(endpoints.database_url)))


def up(config: StackConfig) -> StackSecrets:
    secrets = start_infrastructure(config)
    services.start_all(config, default_endpoints(config, secrets), secrets)
    for name in services.SERVICES:
        print(f"{name:<10} {config.service_url(name)}")
    return secrets


def down(config: StackConfig) -> None:
    for name in reversed(services.SERVICES):
        services.stop(name, config.run_dir)
    kafka.stop(config)
    postgres.stop(config)


def run(config: StackConfig, csv: Path) -> int:
    secrets = up(config)
    client = PipelineClient(config.service_url("ingest"), config.service_url("dashboard"))
    try:
        upload_token = client.token("uploader", secrets.client_secrets["uploader"])
        response = client.upload(csv, upload_token)
        print(f"\nPOST /api/v1/uploads {csv.name} -> {response.status_code} {response.text}")
        if response.status_code >= 400:
            return 1
        upload_id = response.json()["upload_id"]
        status = client.wait_complete(upload_id, upload_token)
        print(
            f"upload {upload_id}: {status['status']}, rows {status['rows_total']},"
            f" valid {status['valid_count']}, rejected {status['rejected_count']}"
        )
        summary = client.summary(client.token("viewer", secrets.client_secrets["viewer"]))
        print("\nGET /api/v1/summary")
        print(json.dumps(summary, indent=2))
    finally:
        client.close()
    return 0


def status(config: StackConfig) -> None:
    kafka_pid = processes.read_pid(config.run_dir / "kafka.pid")
    print(f"kafka      {config.bootstrap_servers:<24} pid {kafka_pid}")
    pg_up = (postgres.data_dir(config) / "postmaster.pid").exists()
    print(
        f"postgres   {config.host}:{config.postgres_port:<14} {'running' if pg_up else 'stopped'}"
    )
    for name in services.SERVICES:
        url = config.service_url(name)
        print(f"{name:<10} {url:<24} {'ready' if services.ready(url) else 'not ready'}")


def schemas(check: bool) -> int:
    stale = []
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for topic, model in TOPIC_MODELS.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"{topic}.schema.json"
        schema["title"] = f"{topic} record"
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        path = SCHEMA_DIR / f"{topic}.schema.json"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale JSON Schemas, run `make schemas`: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    run_parser = sub.add_parser("run")
    run_parser.add_argument("csv", nargs="?", type=Path, default=REPO_ROOT / "data" / "sales.csv")
    sub.add_parser("status")
    sub.add_parser("clean")
    sub.add_parser("infra", help="only Kafka, PostgreSQL, topics and migrations")
    gen = sub.add_parser("generate")
    gen.add_argument("rows", type=int)
    gen.add_argument("out", type=Path)
    gen.add_argument("--invalid-share", type=float, default=0.1)
    gen.add_argument("--seed", type=int, default=7)
    schema_parser = sub.add_parser("schemas")
    schema_parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    config = StackConfig()
    try:
        if args.command == "up":
            up(config)
        elif args.command == "infra":
            start_infrastructure(config)
        elif args.command == "down":
            down(config)
        elif args.command == "run":
            sys.exit(run(config, args.csv))
        elif args.command == "status":
            status(config)
        elif args.command == "clean":
            down(config)
            shutil.rmtree(config.root, ignore_errors=True)
        elif args.command == "generate":
            generate.write(args.out, args.rows, args.invalid_share, args.seed)
        elif args.command == "schemas":
            sys.exit(schemas(args.check))
    except processes.StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        sys.exit(1)
