"""First-start provisioning: the configured admin account."""

from __future__ import annotations

import logging

from mailcue_server.errors import Conflict
from mailcue_server.store import users
from mailcue_server.store.credentials import hash_password

log = logging.getLogger(__name__)


async def ensure_admin(username: str, password: str, email: str) -> bool:
    """Create the admin from the configuration unless that username exists.

    Returns:
        True if the account was created now.
    """
    if await users.get_by_username(username) is not None:
        return False
    try:
        await users.create(
            username=username,
            email=email,
            password_hash=await hash_password(password),
            is_admin=True,
            max_mailboxes=1000,
        )
    except Conflict:  # another node sharing the database created it first
        return False
    log.info("created admin user %r", username)
    return True
