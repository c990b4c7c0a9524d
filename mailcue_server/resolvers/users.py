"""User accounts: registration and administration."""

from __future__ import annotations

from mailcue_server.errors import Forbidden, Invalid, NotFound
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.password_policy import check_password_policy
from mailcue_server.schema.types.auth import (
    AdminResetPasswordRequest,
    RegisterRequest,
    UserListResponse,
    UserResponse,
    UserUpdateRequest,
)
from mailcue_server.store import auth_sessions, users
from mailcue_server.store.credentials import hash_password
from mailcue_server.store.models import User
from mailcue_server.store.users import USERNAME_MAX

# The most mailboxes a user may be allowed; a 32-bit column holds it on every engine.
MAX_MAILBOX_QUOTA = 1_000_000


def user_view(user: User) -> UserResponse:
    return UserResponse(
        id=str(user.id),
        username=user.username,
        email=user.email,
        is_admin=user.is_admin,
        is_active=user.is_active,
        created_at=user.created_at,
        totp_enabled=user.totp_enabled,
        max_mailboxes=user.max_mailboxes,
    )


def check_new_password(password: str, *names: str) -> None:
    """The one check of every password a user sets: their own, a mailbox's, the CLI's.

    Args:
        password: The new password.
        *names: What it protects (username, email, mailbox address): it may not be one.

    Raises:
        Invalid: the reason it is refused (see ``password_policy``).
    """
    check_password_policy(password, names)


def _check_quota(max_mailboxes: int) -> int:
    if not 0 <= max_mailboxes <= MAX_MAILBOX_QUOTA:
        raise Invalid(f"max_mailboxes must be between 0 and {MAX_MAILBOX_QUOTA}")
    return max_mailboxes


def _check_username(username: str) -> str:
    name = username.strip()
    if not 1 <= len(name) <= USERNAME_MAX or not all(c.isalnum() or c in "._-@" for c in name):
        raise Invalid("Username must be 1-64 letters, digits or . _ - @")
    return name


async def register(ctx: Context, data: RegisterRequest) -> UserResponse:
    """Create a user. Admin only."""
    ctx.require_principal().require_admin("user:manage")
    username, email = _check_username(data.username), canonical_address(data.email)
    check_new_password(data.password, username, email)
    quota = _check_quota(data.max_mailboxes)
    user = await users.create(
        username=username,
        email=email,
        password_hash=await hash_password(data.password),
        is_admin=data.is_admin,
        max_mailboxes=quota,
    )
    return user_view(user)


async def list_users(ctx: Context) -> UserListResponse:
    ctx.require_principal().require_admin("user:manage")
    rows = await users.list_all()
    return UserListResponse(users=[user_view(u) for u in rows], total=len(rows))


async def _get_user(user_id: str) -> User:
    try:
        return await users.get(user_id)
    except (ValueError, NotFound):
        raise NotFound("User not found") from None


async def update_user(ctx: Context, user_id: str, data: UserUpdateRequest) -> UserResponse:
    principal = ctx.require_principal()
    principal.require_admin("user:manage")
    user = await _get_user(user_id)
    if user.id == principal.user_id and (data.is_admin is False or data.is_active is False):
        raise Forbidden("Administrators cannot demote or deactivate themselves")
    changed = []
    if data.max_mailboxes is not None:
        user.max_mailboxes = _check_quota(data.max_mailboxes)
        changed.append("max_mailboxes")
    if data.is_admin is not None:
        user.is_admin = data.is_admin
        changed.append("is_admin")
    if data.is_active is not None:
        user.is_active = data.is_active
        changed.append("is_active")
    if changed:
        await users.save(user, *changed)
    if data.is_active is False:
        await auth_sessions.revoke_all_for_user(user.id, now=ctx.now(), reason="deactivated")
    return user_view(user)


async def deactivate_user(ctx: Context, user_id: str) -> None:
    await update_user(ctx, user_id, UserUpdateRequest(is_active=False))


async def admin_reset_password(ctx: Context, data: AdminResetPasswordRequest) -> str:
    principal = ctx.require_principal()
    principal.require_admin("user:manage")
    user = await users.get_by_username(data.username)
    if user is None:
        raise NotFound("User not found")
    if user.id == principal.user_id:
        # Not a way around PUT /auth/password's rule for one's own account.
        principal.require_account_security()
    check_new_password(data.new_password, user.username, user.email)
    user.password_hash = await hash_password(data.new_password)
    await users.save(user, "password_hash")
    await auth_sessions.revoke_all_for_user(user.id, now=ctx.now(), reason="password reset")
    return f"Password for '{user.username}' has been reset"
