"""devstack: run the whole pipeline on this machine without containers.

devstack up              start Kafka, PostgreSQL, topics, migrations and the four services
devstack infra           only Kafka, PostgreSQL, topics and migrations
devstack down            stop everything, keep the data
devstack status          what runs where
devstack env CLIENT      shell exports pointing the sales-pipeline client at this stack
devstack clean           down and delete .stack (data, logs, jars, secrets)
devstack generate N OUT  write a large deterministic CSV file
devstack schemas         write docs/schemas/*.json from the contracts (--check: fail if stale)

Uploading and reading the summary is the client's job (tools/cli): `make run` does both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import sys
from pathlib import Path

from pydantic import SecretStr
from sales_common.events import TOPIC_MODELS
from sales_common.kafka import ensure_topics, with_backoff
from sales_common.schema.migrations import migrate
from sales_common.services import SERVICES
from sales_common.settings import KafkaSettings, PostgresSettings

from devstack import generate, kafka, postgres, processes, services
from devstack.config import REPO_ROOT, StackConfig
from devstack.secrets import CLIENT_SCOPES, StackSecrets, load_or_create

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
    kafka_settings = KafkaSettings(bootstrap_servers=endpoints.bootstrap_servers)
    await with_backoff(lambda: ensure_topics(kafka_settings), "create topics", attempts=30, max_s=2)
    await migrate(PostgresSettings(dsn=SecretStr(endpoints.database_url)))


def up(config: StackConfig) -> StackSecrets:
    secrets = start_infrastructure(config)
    services.start_all(config, default_endpoints(config, secrets), secrets)
    for name in SERVICES:
        print(f"{name:<10} {config.service_url(name)}")
    return secrets


def down(config: StackConfig) -> None:
    for name in reversed(SERVICES):
        services.stop(name, config.run_dir)
    kafka.stop(config)
    postgres.stop(config)


def env(config: StackConfig, client_id: str) -> None:
    """Shell exports that point the sales-pipeline client at this stack as `client_id`."""
    secrets = load_or_create(config.secrets_file)
    values = {
        "SALES_INGEST_URL": config.service_url("ingest"),
        "SALES_DASHBOARD_URL": config.service_url("dashboard"),
        "SALES_CLIENT_ID": client_id,
        "SALES_CLIENT_SECRET": secrets.client_secrets[client_id],
    }
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")


def status(config: StackConfig) -> None:
    # Each server is asked, not its pid file: a dead postmaster leaves its pid file behind.
    kafka_up = kafka.is_listening(config.host, config.kafka_port)
    print(f"kafka      {config.bootstrap_servers:<24} {'running' if kafka_up else 'stopped'}")
    pg_up = postgres.accepting(config)
    print(
        f"postgres   {config.host}:{config.postgres_port:<14} {'running' if pg_up else 'stopped'}"
    )
    for name in SERVICES:
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
    env_parser = sub.add_parser("env")
    env_parser.add_argument("client", choices=sorted(CLIENT_SCOPES))
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
        elif args.command == "env":
            env(config, args.client)
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
