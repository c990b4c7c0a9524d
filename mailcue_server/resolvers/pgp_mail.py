"""OpenPGP for mail: protect a message before it is sent, read a PGP message for its detail.

The send and inject resolvers call :func:`pgp_protect` after building a
message and before anything is submitted or stored; the email detail calls
:func:`pgp_reading` to fill its ``gpg`` field and to show the decrypted
bodies and attachments. Keys come from ``resolvers/gpg.py``'s rules: a
recipient's key is our mailbox's key or the sender's own contact key for
that address; signing needs the sender mailbox's private key, and only who
may reach that mailbox may sign with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailcue_server.errors import Invalid
from mailcue_server.mail import pgp, pgp_keys
from mailcue_server.mail.pgp_keys import PGPKey
from mailcue_server.mail.pgp_mime import protect
from mailcue_server.resolvers.access import may_reach
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.resolvers.gpg import key_record, key_view, secret_box
from mailcue_server.schema.types.gpg import GpgEmailInfo, GpgKeyResponse, SignatureStatus
from mailcue_server.store import gpg_keys, mailboxes
from mailcue_server.store.gpg_models import GpgKey
from mailcue_server.store.mail_models import Mailbox

log = logging.getLogger(__name__)


def private_key(ctx: Context, row: GpgKey) -> PGPKey | None:
    """The unsealed private key of a stored key, if the server holds it (and can open it)."""
    if row.sealed_private_key is None:
        return None
    try:
        return pgp_keys.parse_stored(secret_box(ctx).open(row.sealed_private_key))
    except ValueError:  # sealed under another server secret: as good as absent
        log.warning(
            "the private GPG key of %s does not open with this server's secret", row.address
        )
        return None


async def _encryption_row(principal: Principal, address: str) -> GpgKey | None:
    """A recipient's key: our mailbox's, else the sender's contact key for the address."""
    return await gpg_keys.mailbox_key(address) or await gpg_keys.contact_key(
        principal.user_id, address
    )


async def pgp_protect(
    ctx: Context,
    raw: bytes,
    *,
    sender: str,
    recipients: Sequence[str],
    sign: bool,
    encrypt: bool,
) -> bytes:
    """Sign and/or encrypt a built message (RFC 3156) before it is sent or injected.

    Signing uses the sender mailbox's private key. Encryption goes to every
    recipient's key and to the sender's own (so the Sent copy stays
    readable). Every key is checked before anything is built: call this
    before sending and nothing leaves on failure.

    Args:
        raw: The message as built (``compose.build_message(...).raw``).
        sender: The From address (the sender's mailbox).
        recipients: Every envelope recipient (To, Cc and Bcc).

    Returns:
        The protected message (unchanged when neither flag is set).

    Raises:
        Invalid: Naming each address without a usable key.
    """
    if not (sign or encrypt):
        return raw
    principal = ctx.require_principal()
    now = ctx.now()
    signing_key = await _signing_key(ctx, principal, sender, now) if sign else None
    keys = await _encryption_keys(principal, sender, recipients, now) if encrypt else []
    return await asyncio.to_thread(protect, raw, signing_key=signing_key, encryption_keys=keys)


async def _signing_key(ctx: Context, principal: Principal, sender: str, now: datetime) -> PGPKey:
    mailbox = await mailboxes.find_mailbox(sender)
    if mailbox is None or not may_reach(principal, mailbox):
        raise Invalid(f"Cannot sign: {sender} is not one of your mailboxes")
    row = await gpg_keys.mailbox_key(mailbox.address)
    key = private_key(ctx, row) if row is not None else None
    if key is None:
        raise Invalid(f"Cannot sign: {sender} has no private GPG key; generate or import one")
    problem = pgp_keys.usable_for(key, "sign", now)
    if problem:
        raise Invalid(f"Cannot sign: the GPG key of {sender} {problem}")
    return key


async def _encryption_keys(
    principal: Principal, sender: str, recipients: Sequence[str], now: datetime
) -> list[PGPKey]:
    keys: list[PGPKey] = []
    missing: list[str] = []
    unusable: list[str] = []
    for address in dict.fromkeys(r.strip().lower() for r in recipients if r.strip()):
        row = await _encryption_row(principal, address)
        if row is None:
            missing.append(address)
            continue
        key = pgp_keys.parse_stored(row.public_key)
        problem = pgp_keys.usable_for(key, "encrypt", now)
        if problem:
            unusable.append(f"{address} ({problem})")
        keys.append(key)
    if missing:
        raise Invalid(f"Cannot encrypt: no GPG public key for {', '.join(missing)}")
    if unusable:
        raise Invalid(f"Cannot encrypt: unusable GPG key for {', '.join(unusable)}")
    own = await _encryption_row(principal, sender.strip().lower())
    if own is not None:
        key = pgp_keys.parse_stored(own.public_key)
        if pgp_keys.usable_for(key, "encrypt", now) is None:
            keys.append(key)
    return keys


@dataclass(frozen=True, slots=True)
class PgpReading:
    """What the email detail shows of a PGP message.

    Attributes:
        info: The detail's ``gpg`` field.
        decrypted_message: The decrypted message (outer header fields and the
            decrypted entity) for ``mail.mime.parse_detail``: its bodies and
            attachments are the ones to show. ``None`` if nothing was decrypted.
    """

    info: GpgEmailInfo
    decrypted_message: bytes | None


async def pgp_reading(ctx: Context, raw: bytes, mailbox: Mailbox) -> PgpReading | None:
    """Recognise, decrypt (with the mailbox's key) and check a message; ``None`` if not PGP.

    Signatures are checked against our mailboxes' keys and the contact keys
    of the mailbox's owner. The caller has already checked access to ``mailbox``.
    """
    row = await gpg_keys.mailbox_key(mailbox.address)
    secret = private_key(ctx, row) if row is not None else None
    opened = await asyncio.to_thread(pgp.open_message, raw, [secret] if secret else [])
    if not opened.is_pgp:
        return None
    info = GpgEmailInfo(
        is_signed=opened.is_signed,
        is_encrypted=opened.is_encrypted,
        decrypted=opened.decrypted,
        encryption_key_ids=list(opened.encryption_key_ids),
    )
    if opened.is_signed:
        pending = opened.signature
        owner = mailbox.owner_id  # type: ignore[attr-defined]
        rows = await gpg_keys.find_by_key_ids(pending.signer_ids if pending else (), owner)
        keys = [pgp_keys.parse_stored(r.public_key) for r in rows]
        check = await asyncio.to_thread(pgp.check_signature, pending, keys, ctx.now())
        info.signature_status = SignatureStatus(check.status)
        info.signer_fingerprint = check.fingerprint
        info.signer_key_id = check.key_id
        info.signer_uid = check.uid
    return PgpReading(info=info, decrypted_message=opened.decrypted_message)


async def import_offered_keys(ctx: Context, raw: bytes, mailbox: Mailbox) -> list[GpgKeyResponse]:
    """Auto-import: the public keys a received message carries become contact keys.

    They are filed as contact keys of the mailbox's owner, by each key's own
    user id; an address that already has a key, or is one of our mailboxes,
    is skipped (a message must not replace a key). For the detail resolver
    to call when the auto-import setting is on.
    """
    owner = mailbox.owner_id  # type: ignore[attr-defined]
    if owner is None:
        return []
    imported: list[GpgKeyResponse] = []
    for armored in await asyncio.to_thread(pgp.offered_keys, raw):
        try:
            key = await asyncio.to_thread(pgp_keys.load_key, armored)
        except Invalid:
            continue
        facts = pgp_keys.facts(key)
        address = facts.uid_email
        if not address or facts.is_private or await mailboxes.find_mailbox(address):
            continue
        if await gpg_keys.contact_key(owner, address) is not None:
            continue
        record = key_record(ctx, key, address, facts)
        imported.append(key_view(await gpg_keys.save_key(record, mailbox_id=None, owner_id=owner)))
    return imported
