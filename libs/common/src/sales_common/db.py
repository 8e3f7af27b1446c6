"""PostgreSQL connection pools with explicit TLS behaviour."""

from __future__ import annotations

import asyncio
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
    application_name: str | None = None,
) -> Pool:
    """`application_name` names the service in pg_stat_activity and the server's logs."""
    pool = await asyncpg.create_pool(
        settings.dsn.get_secret_value(),
        server_settings={"application_name": application_name} if application_name else None,
        init=init,  # type: ignore[arg-type]  # the stub wants a Protocol, any async callable works
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.command_timeout_s,
        ssl=ssl_option(settings),
    )
    assert pool is not None
    return pool


# PostgreSQL is down, restarting or out of connections: answer 503 + Retry-After, retry loops.
# Seen when PostgreSQL shuts down under load, besides connection errors: AdminShutdownError
# (57P01) for a statement in flight, and InternalClientError from the pool returning a
# connection that died between the error and ReadyForQuery (asyncpg terminates that
# connection). Missing the latter once left the loader's loop dead after a restart.
DB_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# What a retry of the same transaction can outlive.
TRANSIENT_DB_ERRORS = (
    *DB_UNAVAILABLE_ERRORS,
    OSError,  # includes TimeoutError
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


def is_transient_db_error(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT_DB_ERRORS)


async def close_pool(pool: Pool, timeout_s: float = 10.0) -> None:
    """Close gracefully, but never let a connection stuck in a dead server hold shutdown."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        pool.terminate()


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
