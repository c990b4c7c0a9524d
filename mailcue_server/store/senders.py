"""Which addresses an authenticated SMTP identity may send as (production submission).

An identity is what SMTP AUTH returned: ``mailbox:<address>`` (logged in with
the mailbox's own password, or with an admin's master login ``<address>*<admin>``,
which acts as that mailbox and nothing more) or ``user:<username>`` (a user account; usernames
may contain ``@``, so the kind is spelled out rather than guessed). The rule:

* a mailbox identity sends as its own address;
* a user sends as the mailboxes they own;
* either sends as an alias whose exact source expands (through any chain of
  exact aliases) to one of those mailboxes; a domain catch-all does not count,
  or one catch-all would let its owner write as every address of the domain;
* an administrator also sends as any address of a domain we manage (they
  manage the domain's mailboxes and aliases anyway);
* nobody sends as the null sender ``<>``: bounces are the server's to write.
"""

from __future__ import annotations

from mailcue_server.errors import Invalid
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.store import aliases, domains
from mailcue_server.store.mailboxes import list_mailboxes
from mailcue_server.store.users import get_by_username

MAILBOX = "mailbox:"
USER = "user:"


def mailbox_identity(address: str) -> str:
    return MAILBOX + address


def user_identity(username: str) -> str:
    return USER + username


def login_name(identity: str) -> str:
    """The name an identity logged in with: the mailbox address or the username."""
    for kind in (MAILBOX, USER):
        if identity.startswith(kind):
            return identity.removeprefix(kind)
    return identity


async def _own_mailboxes(identity: str) -> tuple[set[str], bool]:
    """The identity's mailbox addresses, and whether it is an administrator."""
    if identity.startswith(MAILBOX):
        return {identity.removeprefix(MAILBOX).lower()}, False
    if not identity.startswith(USER):
        return set(), False
    user = await get_by_username(identity.removeprefix(USER))
    if user is None or not user.is_active:
        return set(), False
    owned = await list_mailboxes(user.id)
    return {mailbox.address.lower() for mailbox in owned}, user.is_admin


async def may_send_as(identity: str, address: str) -> bool:
    """Whether ``identity`` may use ``address`` as its reverse-path."""
    if not address:
        return False
    try:
        sender = canonical_address(address).lower()
    except Invalid:
        return False
    own, is_admin = await _own_mailboxes(identity)
    if sender in own:
        return True
    if is_admin and await domains.is_managed(sender.rpartition("@")[2]):
        return True
    expanded = await aliases.expand_recipients([sender])
    if not expanded.applied or any(source.startswith("@") for source in expanded.applied):
        return False
    return bool(own.intersection(expanded.addresses))
