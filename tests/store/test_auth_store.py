"""The account tables on both engines, through the real migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from mailcue_server.errors import Conflict
from mailcue_server.store import api_keys, auth_sessions, two_factor, users
from mailcue_server.store.db import (
    Database,
    all_migrations_recorded,
    committed_migrations,
    connection_name,
)
from mailcue_server.store.models import SpentLoginStep
from services import fresh_postgres_database

Engine = Callable[[], AbstractAsyncContextManager[Database]]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """Opens a migrated database of the parametrised engine inside the test's own task."""

    @asynccontextmanager
    async def open_db() -> AsyncIterator[Database]:
        async with AsyncExitStack() as stack:
            if request.param == "sqlite":
                url = f"sqlite://{tmp_path / 'store.db'}?journal_mode=WAL"
            else:
                url = await stack.enter_async_context(fresh_postgres_database())
            db = Database(url)
            await db.open()
            stack.push_async_callback(db.close)
            await db.migrate()
            yield db

    return open_db


async def test_migrations_apply_and_match_the_models(engine: Engine) -> None:
    async with engine() as db:
        assert await db.pending_model_changes() == []
        assert await db.migrate() == []  # a second run applies nothing


async def test_a_restart_applies_nothing_and_a_migration_not_recorded_is_applied(
    engine: Engine,
) -> None:
    # A restart answers "all applied" from the record table alone; a database whose
    # record lacks a committed migration (a newer release's) still goes the full way.
    names = committed_migrations()
    assert names[0] == "0001_initial" and len(names) == len(set(names)) > 10
    async with engine() as db:
        connection = get_connection(connection_name(db.url))
        assert await db.migrate() == []
        assert await all_migrations_recorded(connection)  # the fast path answers
        executor = MigrationExecutor(connection, db.config["apps"])
        await executor.migrate([MigrationTarget("mailcue", names[-2])])  # back one step

        assert not await all_migrations_recorded(connection)
        assert await db.migrate() == [f"mailcue.{names[-1]}"]
        assert await db.pending_model_changes() == []


async def test_usernames_are_unique(engine: Engine) -> None:
    async with engine():
        await users.create(username="ann", email="ann@mailcue.local", password_hash="x")
        with pytest.raises(Conflict):
            await users.create(username="ann", email="other@mailcue.local", password_hash="y")


async def test_refresh_rotation_and_reuse_revocation(engine: Engine) -> None:
    async with engine():
        now = datetime.now(UTC)
        user = await users.create(username="bob", email="bob@mailcue.local", password_hash="x")
        session = await auth_sessions.start(user, user_agent="t", client_ip="127.0.0.1")
        await auth_sessions.add_refresh_token(session, "first", now + timedelta(days=1))
        rotated = await auth_sessions.rotate("first", now=now)
        assert rotated.id == session.id
        await auth_sessions.add_refresh_token(session, "second", now + timedelta(days=1))
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("first", now=now)  # reuse
        assert not await auth_sessions.is_active(session.id)
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("second", now=now)


async def test_the_grace_forgives_only_the_latest_rotation_and_only_briefly(
    engine: Engine,
) -> None:
    grace = timedelta(seconds=10)
    async with engine():
        now = datetime.now(UTC)
        user = await users.create(username="gus", email="gus@mailcue.local", password_hash="x")
        later = now + timedelta(days=1)

        async def new_session(*tokens: str) -> auth_sessions.AuthSession:
            session = await auth_sessions.start(user, user_agent="", client_ip="")
            for token in tokens:
                await auth_sessions.add_refresh_token(session, token, later)
            return session

        # The token the latest rotation spent, again within the grace: refused, nothing revoked.
        quick = await new_session("q1")
        await auth_sessions.rotate("q1", now=now, grace=grace)
        await auth_sessions.add_refresh_token(quick, "q2", later)
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("q1", now=now + timedelta(seconds=9), grace=grace)
        assert await auth_sessions.is_active(quick.id)
        assert (await auth_sessions.rotate("q2", now=now, grace=grace)).id == quick.id

        # The same, after the grace: the family is revoked.
        late = await new_session("l1")
        await auth_sessions.rotate("l1", now=now, grace=grace)
        await auth_sessions.add_refresh_token(late, "l2", later)
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("l1", now=now + timedelta(seconds=11), grace=grace)
        assert not await auth_sessions.is_active(late.id)

        # An older token (a later one was spent too), even within the grace: revoked.
        old = await new_session("o1")
        await auth_sessions.rotate("o1", now=now, grace=grace)
        await auth_sessions.add_refresh_token(old, "o2", later)
        await auth_sessions.rotate("o2", now=now, grace=grace)
        await auth_sessions.add_refresh_token(old, "o3", later)
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("o1", now=now, grace=grace)
        assert not await auth_sessions.is_active(old.id)

        # No grace (0): every reuse revokes, even in the same instant.
        strict = await new_session("s1")
        await auth_sessions.rotate("s1", now=now)
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("s1", now=now)
        assert not await auth_sessions.is_active(strict.id)


async def test_expired_refresh_token_is_rejected(engine: Engine) -> None:
    async with engine():
        now = datetime.now(UTC)
        user = await users.create(username="cy", email="cy@mailcue.local", password_hash="x")
        session = await auth_sessions.start(user, user_agent="", client_ip="")
        await auth_sessions.add_refresh_token(session, "old", now - timedelta(seconds=1))
        with pytest.raises(auth_sessions.RefreshRejected):
            await auth_sessions.rotate("old", now=now)
        assert await auth_sessions.is_active(session.id)  # expiry alone revokes nothing


async def test_api_keys_are_found_by_hash_only(engine: Engine) -> None:
    async with engine():
        user = await users.create(username="dee", email="dee@mailcue.local", password_hash="x")
        key = await api_keys.create(
            user,
            name="k",
            raw_key="mc_secret-value",
            prefix="mc_secret",
            scopes=["email:read"],
            allowed_mailboxes=None,
        )
        assert key.key_hash != "mc_secret-value" and len(key.key_hash) == 64
        found = await api_keys.find_active("mc_secret-value")
        assert found is not None and found.user.username == "dee"
        assert found.scopes == ["email:read"] and found.allowed_mailboxes is None
        assert await api_keys.find_active("mc_secret-valuE") is None
        found.is_active = False
        await api_keys.save(found, "is_active")
        assert await api_keys.find_active("mc_secret-value") is None


async def test_a_totp_step_is_accepted_once_and_only_forwards(engine: Engine) -> None:
    async with engine():
        user = await users.create(username="eve", email="eve@mailcue.local", password_hash="x")
        claims = [await two_factor.claim_totp_step(user.id, step) for step in (100, 100, 99, 101)]
        assert claims == [True, False, False, True]


async def test_a_step_token_is_spent_once_even_when_racing(engine: Engine) -> None:
    async with engine():
        now = datetime.now(UTC)
        user = await users.create(username="fay", email="fay@mailcue.local", password_hash="x")
        expires = now + timedelta(minutes=5)
        raced = await asyncio.gather(
            *(
                two_factor.finish_login_step(
                    user.id, jti="jti-1", token_expires=expires, step=step, now=now
                )
                for step in (10, 11, 12)
            )
        )
        assert sorted(raced) == [False, False, True]
        # A refused finish spends nothing: step 13 is still free for a new token.
        assert not await two_factor.finish_login_step(
            user.id, jti="jti-1", token_expires=expires, step=13, now=now
        )
        assert await two_factor.finish_login_step(
            user.id, jti="jti-2", token_expires=expires, step=13, now=now
        )
        # Spent tokens are forgotten once they would have expired anyway.
        later = expires + timedelta(seconds=1)
        assert await two_factor.finish_login_step(
            user.id, jti="jti-3", token_expires=later + timedelta(minutes=5), step=14, now=later
        )
        assert await SpentLoginStep.all().values_list("jti", flat=True) == ["jti-3"]


async def test_nodes_migrating_together_take_turns(tmp_path: Path) -> None:
    """Two nodes starting at once on a fresh PostgreSQL: both end up migrated, no error."""
    async with fresh_postgres_database() as url:
        first, second = Database(url), Database(url)
        await first.open()
        await second.open()
        try:
            applied = await asyncio.gather(first.migrate(), second.migrate())
            assert sorted(len(names) for names in applied)[0] == 0  # the later one found all done
            assert await first.pending_model_changes() == []
        finally:
            await first.close()
            await second.close()
