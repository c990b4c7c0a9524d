"""Who may touch which mailbox: the one rule every mail route, field and event applies.

A user reaches the mailboxes they own; an admin reaches all of them. An API
key narrows that further with its scopes and its mailbox allow-list. A
mailbox the caller may not reach answers exactly like one that does not
exist (:class:`NotFound`), so its existence is not revealed.
"""

from __future__ import annotations

from mailcue_server.errors import NotFound
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.store import mailboxes
from mailcue_server.store.mail_models import Mailbox


def may_reach(principal: Principal, mailbox: Mailbox) -> bool:
    """Ownership (or admin) and the API key's allow-list; scopes are checked by the caller."""
    owns = principal.is_admin or mailbox.owner_id == principal.user_id  # type: ignore[attr-defined]
    return owns and principal.may_use_mailbox(mailbox.address)


async def reachable_mailbox(ctx: Context, address: str, scope: str) -> Mailbox:
    """The mailbox at ``address`` if the caller holds ``scope`` and may reach it.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``scope``.
        NotFound: No such mailbox, or one the caller may not reach (the same answer).
    """
    principal = ctx.require_principal()
    principal.require_scope(scope)
    mailbox = await mailboxes.find_mailbox(address)
    if mailbox is None or not may_reach(principal, mailbox):
        raise NotFound(f"Mailbox '{address}' not found")
    return mailbox


async def reachable_mailboxes(principal: Principal) -> list[Mailbox]:
    """Every mailbox the principal may reach, by address (scopes are the caller's check)."""
    owner = None if principal.is_admin else principal.user_id
    return [m for m in await mailboxes.list_mailboxes(owner) if may_reach(principal, m)]


async def can_read_events_of(principal: Principal, address: str) -> bool:
    """Whether events of the mailbox at ``address`` may be shown to ``principal``.

    A mailbox that no longer exists (``mailbox.deleted``) is shown to admins only.
    """
    if not principal.may_use_mailbox(address):
        return False
    mailbox = await mailboxes.find_mailbox(address)
    if mailbox is None:
        return principal.is_admin
    return may_reach(principal, mailbox)
