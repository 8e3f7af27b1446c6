"""Versioned SQL migrations: `sql/NNNN_name.sql`, applied in order, each once.

Run by `sales-migrate` (a Kubernetes hook or compose one-shot, see `cli.py`), at loader
start-up and by the dev stack. An advisory lock makes concurrent runs safe.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

from sales_common.db import ssl_option
from sales_common.logging import get_logger
from sales_common.settings import PostgresSettings

log = get_logger(__name__)
_LOCK_KEY = 7_316_204_551  # any constant shared by every migrator


def available() -> list[tuple[str, str]]:
    files = resources.files("sales_common.schema") / "sql"
    names = sorted(f.name for f in files.iterdir() if f.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), (files / name).read_text()) for name in names]


async def apply(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in available():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("migration_applied", version=version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate(settings: PostgresSettings) -> list[str]:
    conn = await asyncpg.connect(settings.dsn.get_secret_value(), ssl=ssl_option(settings))
    try:
        return await apply(conn)
    finally:
        await conn.close()
