"""Queries on API keys. The raw key is never stored: only its SHA-256 and a display prefix."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from mailcue_server.errors import NotFound
from mailcue_server.store.credentials import sha256_hex
from mailcue_server.store.ids import uuid_or_none
from mailcue_server.store.models import ApiKey, User


async def create(
    user: User,
    *,
    name: str,
    raw_key: str,
    prefix: str,
    scopes: list[str],
    allowed_mailboxes: list[str] | None,
) -> ApiKey:
    return await ApiKey.create(
        user=user,
        name=name,
        prefix=prefix,
        key_hash=sha256_hex(raw_key),
        scopes=scopes,
        allowed_mailboxes=allowed_mailboxes,
    )


async def list_for_user(user_id: UUID | str) -> list[ApiKey]:
    return await ApiKey.filter(user_id=user_id).order_by("created_at")


async def get_for_user(key_id: UUID | str, user_id: UUID | str) -> ApiKey:
    """The key if it belongs to the user; another user's key, or a malformed id, is 'not
    found' alike."""
    parsed = uuid_or_none(key_id)
    key = None if parsed is None else await ApiKey.get_or_none(id=parsed, user_id=user_id)
    if key is None:
        raise NotFound("API key not found")
    return key


async def find_active(raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, with its user loaded."""
    return (
        await ApiKey.filter(key_hash=sha256_hex(raw_key), is_active=True)
        .select_related("user")
        .first()
    )


async def touch(key: ApiKey, now: datetime) -> None:
    await ApiKey.filter(id=key.id).update(last_used_at=now)


async def save(key: ApiKey, *fields: str) -> None:
    await key.save(update_fields=list(fields))


async def delete(key: ApiKey) -> None:
    await key.delete()
