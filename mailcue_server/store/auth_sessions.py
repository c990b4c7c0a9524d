"""Login sessions and their rotating refresh tokens.

A session is a refresh-token family. Each refresh token works once; using
one marks it used and issues the next. Presenting a used token again means it
leaked, so the whole session is revoked (RFC 9700 section 4.14.2). Access
tokens carry their session id and stop working when the session is revoked.

One reuse is forgiven, as identity providers do: the token spent last, presented
again within a short grace period, is refused without revoking anything. Two
browser tabs that refresh at the same moment send the same token; the slower
one is refused and the session lives on. A reuse after the grace period, or of
any older token, still revokes the whole family.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from tortoise.transactions import in_transaction

from mailcue_server.store.credentials import sha256_hex
from mailcue_server.store.models import AuthSession, RefreshToken, User


class RefreshRejected(Exception):
    """The refresh token is unknown, expired, revoked or was already used."""


async def start(user: User, *, user_agent: str, client_ip: str) -> AuthSession:
    return await AuthSession.create(
        user=user, user_agent=user_agent[:255], client_ip=client_ip[:64]
    )


async def add_refresh_token(session: AuthSession, token: str, expires_at: datetime) -> None:
    await RefreshToken.create(session=session, token_hash=sha256_hex(token), expires_at=expires_at)


async def is_active(session_id: UUID | str) -> bool:
    return await AuthSession.exists(id=session_id, revoked_at__isnull=True)


async def rotate(token: str, *, now: datetime, grace: timedelta = timedelta(0)) -> AuthSession:
    """Spend ``token`` and return its live session (caller adds the next token).

    Args:
        token: The refresh token presented.
        now: The current time.
        grace: How long after its rotation the latest spent token may come back
            without revoking the session (concurrent refreshes, e.g. two tabs).

    Raises:
        RefreshRejected: unknown, expired or revoked; a reused token also
            revokes its session (committed) before raising, unless it is the
            latest spent one within ``grace``.
    """
    rejection: str | None = None
    async with in_transaction():
        # Two locked reads, not select_related: PostgreSQL refuses FOR UPDATE
        # on the nullable side of the outer join select_related makes.
        row = await RefreshToken.filter(token_hash=sha256_hex(token)).select_for_update().first()
        if row is None:
            raise RefreshRejected("unknown refresh token")
        session_id = row.session_id  # type: ignore[attr-defined]
        session = await AuthSession.filter(id=session_id).select_for_update().first()
        if session is None:
            raise RefreshRejected("unknown refresh token")
        if row.used_at is not None:
            rejection = "refresh token reused"
            if not await _forgiven(row, session_id, now, grace):
                # Not raised here: raising would roll the revocation back with the transaction.
                await _revoke(session, now, "refresh token reused")
        elif session.revoked_at is not None or row.expires_at <= now:
            rejection = "refresh token expired or revoked"
        else:
            row.used_at = now
            await row.save(update_fields=["used_at"])
            session.last_used_at = now
            await session.save(update_fields=["last_used_at"])
    if rejection is not None:
        raise RefreshRejected(rejection)
    return session


async def _forgiven(row: RefreshToken, session_id: UUID, now: datetime, grace: timedelta) -> bool:
    """Whether a spent token's reuse is the benign race: the latest rotation, within ``grace``."""
    assert row.used_at is not None  # noqa: S101 - callers check
    if grace <= timedelta(0) or now - row.used_at > grace:
        return False
    # Tokens of a session are made in order, so a later one that is spent too means
    # this is an older token (a leak), not the one the newest rotation replaced.
    later = RefreshToken.filter(session_id=session_id, id__gt=row.id, used_at__isnull=False)
    return not await later.exists()


async def _revoke(session: AuthSession, now: datetime, reason: str) -> None:
    await AuthSession.filter(id=session.id, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason
    )


async def revoke(session_id: UUID | str, *, now: datetime, reason: str) -> None:
    await AuthSession.filter(id=session_id, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason
    )


async def revoke_all_for_user(
    user_id: UUID | str, *, now: datetime, reason: str, keep: UUID | str | None = None
) -> int:
    """Revoke every live session of a user except ``keep``; returns how many."""
    query = AuthSession.filter(user_id=user_id, revoked_at__isnull=True)
    if keep is not None:
        query = query.exclude(id=keep)
    return await query.update(revoked_at=now, revoked_reason=reason)


def expiry(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)


async def revoke_by_refresh_token(token: str, *, now: datetime) -> None:
    """Revoke the session a refresh token belongs to (logout from a cookie)."""
    row = await RefreshToken.get_or_none(token_hash=sha256_hex(token))
    if row is not None:
        session_id = row.session_id  # type: ignore[attr-defined]
        await AuthSession.filter(id=session_id, revoked_at__isnull=True).update(
            revoked_at=now, revoked_reason="logout"
        )
