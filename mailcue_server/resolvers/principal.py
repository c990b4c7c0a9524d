"""Turning presented credentials into a :class:`Principal`.

Used by the HTTP edge for REST, GraphQL (HTTP and WebSocket) and SSE, so a
bearer token or ``X-API-Key`` means the same thing on every transport.
"""

from __future__ import annotations

from datetime import timedelta

from mailcue_server.errors import Unauthenticated
from mailcue_server.resolvers.context import Principal, Services
from mailcue_server.store import api_keys, auth_sessions, users

API_KEY_PREFIX = "mc_"
# last_used_at is informative; writing it on every request would serialise reads.
_TOUCH_INTERVAL = timedelta(minutes=1)


async def authenticate(
    services: Services, *, bearer: str | None, api_key: str | None
) -> Principal | None:
    """The principal for these credentials; ``None`` when none were presented.

    Raises:
        Unauthenticated: credentials were presented but are invalid, expired,
            revoked, or belong to a deactivated user.
    """
    if api_key:
        return await _from_api_key(services, api_key)
    if bearer:
        if bearer.startswith(API_KEY_PREFIX):  # keys also work as bearer tokens
            return await _from_api_key(services, bearer)
        return await _from_access_token(services, bearer)
    return None


async def _from_access_token(services: Services, token: str) -> Principal:
    claims = services.tokens.read_access(token)
    if claims is None or not await auth_sessions.is_active(claims.session_id):
        raise Unauthenticated("Invalid or expired token")
    user = await users.get_active(claims.user_id)
    if user is None:
        raise Unauthenticated("Invalid or expired token")
    return Principal(
        user_id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        session_id=claims.session_id,
    )


async def _from_api_key(services: Services, raw_key: str) -> Principal:
    key = await api_keys.find_active(raw_key)
    if key is None or not key.user.is_active:
        raise Unauthenticated("Invalid or revoked API key")
    now = services.clock()
    if key.last_used_at is None or now - key.last_used_at > _TOUCH_INTERVAL:
        await api_keys.touch(key, now)
    allowed = key.allowed_mailboxes
    return Principal(
        user_id=key.user.id,
        username=key.user.username,
        is_admin=key.user.is_admin,
        api_key_id=key.id,
        scopes=frozenset(key.scopes or ()),
        allowed_mailboxes=None if not allowed else frozenset(a.lower() for a in allowed),
    )
