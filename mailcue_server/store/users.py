"""Queries on users."""

from __future__ import annotations

from uuid import UUID

from tortoise.exceptions import IntegrityError

from mailcue_server.errors import Conflict, NotFound
from mailcue_server.store.credentials import verify_password
from mailcue_server.store.ids import uuid_or_none
from mailcue_server.store.models import User

USERNAME_MAX = 64
MAX_PASSWORD_LENGTH = 1024


async def get_by_username(username: str) -> User | None:
    return await User.get_or_none(username=username)


async def check_password(username: str, password: str) -> User | None:
    """The active user if the password is right.

    An unknown, oversized or deactivated username costs the same Argon2 check
    as a wrong password, so neither answer nor timing tells them apart.
    """
    plausible = len(username) <= USERNAME_MAX and len(password) <= MAX_PASSWORD_LENGTH
    user = await get_by_username(username) if plausible else None
    ok = await verify_password(
        user.password_hash if user else None, password[:MAX_PASSWORD_LENGTH]
    )
    return user if ok and user is not None and user.is_active else None


async def get_active(user_id: UUID | str) -> User | None:
    """The user if they exist and are not deactivated."""
    return await User.get_or_none(id=user_id, is_active=True)


async def get(user_id: UUID | str) -> User:
    """The user; a malformed id is as unknown as a missing one."""
    key = uuid_or_none(user_id)
    user = None if key is None else await User.get_or_none(id=key)
    if user is None:
        raise NotFound("User not found")
    return user


async def create(
    *,
    username: str,
    email: str,
    password_hash: str,
    is_admin: bool = False,
    max_mailboxes: int = 5,
) -> User:
    """Insert a user; a taken username raises :class:`Conflict`."""
    if await User.exists(username=username):
        raise Conflict(f"Username '{username}' is already taken")
    try:
        return await User.create(
            username=username,
            email=email,
            password_hash=password_hash,
            is_admin=is_admin,
            max_mailboxes=max_mailboxes,
        )
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(f"Username '{username}' is already taken") from exc


async def list_all() -> list[User]:
    return await User.all().order_by("created_at")


async def save(user: User, *fields: str) -> None:
    await user.save(update_fields=[*fields, "updated_at"])


async def count() -> int:
    return await User.all().count()
