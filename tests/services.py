"""Reaching the optional PostgreSQL and Redis services from tests.

A fresh laptop has neither, so tests that need one skip with the reason.
With ``MAILCUE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing service
fails the test instead: CI must run them, never skip them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILCUE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAILCUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    return os.environ.get("MAILCUE_REQUIRE_SERVICES", "") not in ("", "0", "false")


def unavailable(service: str, error: BaseException) -> None:
    """Skip (laptop) or fail (CI) because ``service`` cannot be reached."""
    message = f"{service} is not reachable ({type(error).__name__}: {error})"
    if services_required():
        pytest.fail(f"{message}; MAILCUE_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(message)


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create an empty, uniquely named database; drop it afterwards. Yields its URL."""
    import asyncpg

    try:
        admin = await asyncio.wait_for(
            asyncpg.connect(POSTGRES_ADMIN_URL.replace("postgres://", "postgresql://", 1)), 5
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable("PostgreSQL", exc)
        raise  # unreachable: unavailable() skips or fails
    name = f"mailcue_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def redis_or_skip() -> str:
    """The Redis URL for tests, after checking it answers PING."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except (OSError, aioredis.RedisError, TimeoutError) as exc:
        unavailable("Redis", exc)
    finally:
        await client.aclose()
    return REDIS_URL
