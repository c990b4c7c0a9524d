"""Single use for what proves the second factor: each TOTP code and each 2FA step token.

A TOTP code is valid for its 30-second time step (and, for clock drift, the
neighbouring ones), so a code seen over a shoulder or in a proxy log could
finish a second login. We keep the last step accepted per user and accept only
later ones (RFC 6238 section 5.2). A step token (``temp_token`` of the password
step) carries a ``jti``; finishing a login records it until the token would
expire. Both are single conditional writes in the database, so two nodes (or
two requests at the same moment) cannot both accept the same code or token.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from mailcue_server.store.models import SpentLoginStep, User


class _Refused(Exception):
    """Rolls the transaction back: the code's time step was already used."""


async def claim_totp_step(user_id: UUID | str, step: int) -> bool:
    """Record ``step`` as the latest code accepted; False if it or a later one was used."""
    claimed = (
        await User.filter(id=user_id)
        .filter(Q(totp_last_step__isnull=True) | Q(totp_last_step__lt=step))
        .update(totp_last_step=step)
    )
    return claimed == 1


async def finish_login_step(
    user_id: UUID | str, *, jti: str, token_expires: datetime, step: int, now: datetime
) -> bool:
    """Spend a step token and a TOTP time step together; False (nothing spent) if either was."""
    await SpentLoginStep.filter(expires_at__lt=now).delete()  # no use once the token expired
    try:
        async with in_transaction():
            if not await claim_totp_step(user_id, step):
                raise _Refused
            await SpentLoginStep.create(jti=jti, expires_at=token_expires)
    except (_Refused, IntegrityError):
        return False
    return True
