"""Mailboxes and their folders: creation, lookup, credentials.

A mailbox is born with the five default folders (INBOX, Sent, Drafts, Trash,
Junk; RFC 6154 special-use) in one transaction, and ``mailbox.created`` is
published after it commits. Addresses are stored lowercased, so lookups are
case-insensitive. Deleting and purging mailboxes changes mail, so those live
with the rest of the write path in ``store/messages.py``.
"""

from __future__ import annotations

from uuid import UUID

from tortoise.exceptions import IntegrityError

from mailcue_server.errors import Conflict, Invalid, NotFound
from mailcue_server.events.bus import Event, EventBus, EventType, publish_quietly
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.store import uids, users
from mailcue_server.store.credentials import hash_password, verify_password
from mailcue_server.store.login_limiter import LoginLimiter
from mailcue_server.store.mail_models import DEFAULT_FOLDERS, INBOX, Folder, Mailbox

MAX_FOLDER_NAME = 255


def normalise_address(address: str) -> str:
    """The lookup key of an address: trimmed and lowercased (no validation)."""
    return address.strip().lower()


def folder_name(name: str) -> str:
    """``INBOX`` is case-insensitive (RFC 9051 section 5.1); other names are kept as given."""
    return INBOX if name.upper() == INBOX else name


async def create_mailbox(
    address: str,
    *,
    bus: EventBus,
    display_name: str = "",
    password: str | None = None,
    owner_id: UUID | str | None = None,
    quota_bytes: int | None = None,
    purpose: str = "standard",
) -> Mailbox:
    """Create a mailbox with its default folders.

    Args:
        address: The address; validated, then lowercased.
        bus: Where ``mailbox.created`` is published after commit.
        display_name: The name shown for the mailbox.
        password: Plain password for IMAP/POP3/SMTP AUTH (stored as Argon2id), or none.
        owner_id: The owning user.
        quota_bytes: Storage limit, or ``None`` for no limit.
        purpose: ``standard`` or ``deliverability``.

    Raises:
        Invalid: The address is not valid.
        Conflict: A mailbox with this address exists.
    """
    canonical = normalise_address(canonical_address(address))
    password_hash = await hash_password(password) if password is not None else None
    if await Mailbox.exists(address=canonical):
        raise Conflict(f"Mailbox '{canonical}' already exists")
    try:
        async with uids.write_transaction():
            mailbox = await Mailbox.create(
                address=canonical,
                display_name=display_name,
                password_hash=password_hash,
                owner_id=owner_id,
                quota_bytes=quota_bytes,
                purpose=purpose,
            )
            first = await uids.allocate_uid_validities(mailbox.id, len(DEFAULT_FOLDERS))
            await Folder.bulk_create(
                Folder(mailbox_id=mailbox.id, name=name, special_use=use, uid_validity=first + i)
                for i, (name, use) in enumerate(DEFAULT_FOLDERS)
            )
    except IntegrityError as exc:  # a concurrent delivery created it first
        raise Conflict(f"Mailbox '{canonical}' already exists") from exc
    await publish_quietly(
        bus, [Event(EventType.MAILBOX_CREATED, canonical, data={"mailbox_id": str(mailbox.id)})]
    )
    return mailbox


async def get_or_create_mailbox(address: str, *, bus: EventBus) -> Mailbox:
    """The mailbox of ``address``, created (test mode: first mail) when missing.

    Raises:
        Invalid: The address is not valid (only checked when creating).
    """
    existing = await find_mailbox(address)
    if existing is not None:
        return existing
    try:
        return await create_mailbox(address, bus=bus)
    except Conflict:
        return await get_mailbox(address)


async def find_mailbox(address: str) -> Mailbox | None:
    return await Mailbox.get_or_none(address=normalise_address(address))


async def get_mailbox(address: str) -> Mailbox:
    """Raises :class:`NotFound` when there is no such mailbox."""
    mailbox = await find_mailbox(address)
    if mailbox is None:
        raise NotFound(f"Mailbox '{address}' not found")
    return mailbox


async def list_mailboxes(owner_id: UUID | str | None = None) -> list[Mailbox]:
    """Every mailbox, or those of one owner, by address."""
    query = Mailbox.all() if owner_id is None else Mailbox.filter(owner_id=owner_id)
    return await query.order_by("address")


MASTER_SEPARATOR = "*"


def split_master_login(login: str) -> tuple[str, str | None]:
    """``<address>*<admin username>`` as (address, username); a plain address as (it, None).

    The separator is the first ``*`` after the address's ``@``: a domain never
    holds one, while a local part may (``a*b@example.com`` is a plain address).
    """
    at = login.find("@")
    star = login.find(MASTER_SEPARATOR, at + 1) if at >= 0 else -1
    if star < 0:
        return login, None
    return login[:star], login[star + 1 :]


def login_identity(login: str) -> str:
    """Whom a mail login's guesses count against: the one whose password is tried.

    That is the address, or for a master login ``<address>*<admin>`` the
    administrator, so such guesses share the budget of that admin's API login.
    """
    address, admin = split_master_login(login.strip())
    return address if admin is None else admin


async def check_login(
    login: str, password: str, *, limiter: LoginLimiter, client_ip: str
) -> Mailbox | None:
    """:func:`check_password` behind the login limiter shared by every protocol.

    Raises:
        RateLimited: this client used up its guesses for the login's identity
            (:func:`login_identity`); no password was checked.
    """
    return await limiter.attempt(
        client_ip, login_identity(login), password, lambda: check_password(login, password)
    )


async def check_password(login: str, password: str) -> Mailbox | None:
    """The mailbox a mail login (IMAP, POP3, SMTP AUTH) opens, or ``None``.

    The one password check of every mail protocol. ``login`` is a mailbox
    address with that mailbox's password, or the master login
    ``<address>*<admin username>`` with that administrator's password, which
    opens any existing mailbox (support and tests, as mail servers offer). A
    user who is not an active administrator never opens a mailbox this way.
    Each form costs one Argon2 check whether or not the names exist.
    """
    address, admin = split_master_login(login)
    mailbox = await find_mailbox(address) if address else None
    if admin is not None:
        user = await users.check_password(admin, password)
        return mailbox if user is not None and user.is_admin else None
    stored = mailbox.password_hash if mailbox is not None else None
    if await verify_password(stored, password) and mailbox is not None:
        return mailbox
    return None


async def set_password(address: str, password: str | None) -> None:
    """Set (or with ``None`` remove) the password of a mailbox."""
    mailbox = await get_mailbox(address)
    mailbox.password_hash = await hash_password(password) if password is not None else None
    await mailbox.save(update_fields=["password_hash"])


async def set_display_name(address: str, display_name: str) -> Mailbox:
    mailbox = await get_mailbox(address)
    mailbox.display_name = display_name
    await mailbox.save(update_fields=["display_name"])
    return mailbox


async def set_signature(address: str, signature: str) -> Mailbox:
    mailbox = await get_mailbox(address)
    mailbox.signature = signature
    await mailbox.save(update_fields=["signature"])
    return mailbox


async def count_owned(owner_id: UUID | str) -> int:
    """How many mailboxes a user owns (their ``max_mailboxes`` quota counts these)."""
    return await Mailbox.filter(owner_id=owner_id).count()


async def get_by_id(mailbox_id: UUID | str) -> Mailbox | None:
    return await Mailbox.get_or_none(id=mailbox_id)


async def get_folder(address: str, name: str = INBOX) -> Folder:
    """Raises :class:`NotFound` when the mailbox or the folder does not exist."""
    folder = await Folder.get_or_none(
        mailbox__address=normalise_address(address), name=folder_name(name)
    )
    if folder is None:
        raise NotFound(f"Folder '{name}' of mailbox '{address}' not found")
    return folder


async def list_folders(address: str) -> list[Folder]:
    """The folders of a mailbox, INBOX first."""
    mailbox = await get_mailbox(address)
    folders = await Folder.filter(mailbox_id=mailbox.id).order_by("id")
    return sorted(folders, key=lambda folder: folder.name != INBOX)


async def create_folder(
    address: str, name: str, *, bus: EventBus, subscribed: bool = True
) -> Folder:
    """Create a folder (IMAP CREATE) with a fresh UIDVALIDITY.

    ``subscribed=False`` for IMAP CREATE, which must not subscribe (RFC 3501
    section 6.3.3 leaves that to SUBSCRIBE); folders made elsewhere are.

    Raises:
        NotFound: No such mailbox.
        Invalid: The name is empty or too long.
        Conflict: The folder exists.
    """
    name = folder_name(name.strip())
    if not name or len(name) > MAX_FOLDER_NAME:
        raise Invalid(f"Folder names are 1 to {MAX_FOLDER_NAME} characters")
    mailbox = await get_mailbox(address)
    try:
        async with uids.write_transaction():
            validity = await uids.allocate_uid_validities(mailbox.id, 1)
            folder = await Folder.create(
                mailbox_id=mailbox.id, name=name, uid_validity=validity, subscribed=subscribed
            )
    except IntegrityError as exc:
        raise Conflict(f"Folder '{name}' already exists") from exc
    await publish_quietly(
        bus,
        [Event(EventType.FOLDER_CHANGED, mailbox.address, name, data={"change": "created"})],
    )
    return folder
