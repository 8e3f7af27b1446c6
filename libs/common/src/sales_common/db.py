"""PostgreSQL connection pools with explicit TLS behaviour."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from sales_common.settings import PostgresSettings

# Annotation-only aliases (asyncpg's classes are generic in the stubs, not at run time).
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# What `pool.acquire()` hands out; behaves as a connection.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record] | asyncpg.Connection[asyncpg.Record]"


def ssl_option(settings: PostgresSettings) -> ssl.SSLContext | bool:
    """Translate sslmode; never asyncpg's "prefer", which silently falls back to plaintext."""
    if settings.sslmode == "disable":
        return False
    context = ssl.create_default_context(cafile=settings.sslrootcert)
    if settings.sslmode in ("require",):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif settings.sslmode == "verify-ca":
        context.check_hostname = False
    return context


async def create_pool(
    settings: PostgresSettings,
    init: Callable[[asyncpg.Connection[asyncpg.Record]], Awaitable[None]] | None = None,
) -> Pool:
    pool = await asyncpg.create_pool(
        settings.dsn.get_secret_value(),
        init=init,  # type: ignore[arg-type]  # the stub wants a Protocol, any async callable works
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout_s,
        ssl=ssl_option(settings),
    )
    assert pool is not None
    return pool


async def check_database(pool: Pool) -> None:
    async with pool.acquire(timeout=2) as conn:
        await conn.fetchval("SELECT 1")


_JSONB_VERSION = b"\x01"  # jsonb's binary wire format: a version byte, then the JSON text


def _encode_jsonb(value: object) -> bytes:
    text = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return _JSONB_VERSION + text


def _decode_jsonb(data: bytes) -> object:
    return orjson.loads(data[1:])


async def register_json_codecs(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """jsonb in and out as Python objects (already-encoded strings pass through).

    Binary format, so binary COPY (the loader's bulk path) can carry jsonb too.
    """
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
