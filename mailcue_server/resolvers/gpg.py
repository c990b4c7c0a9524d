"""GPG keys: generate, import, list, export, publish, fetch, delete; and PGP/MIME for mail.

Who may do what (the mailbox rule of ``resolvers/access.py``):

- The key of one of our mailboxes is managed and seen by whoever may reach
  that mailbox (its owner, an admin; an API key narrowed by its allow-list).
  Its private half is generated here or imported, stored sealed under a key
  derived from the server secret, and never leaves the server.
- A public key of any other address is a *contact key* of the user who
  imported it, seen and used by that user only: for encrypting to that
  address and for checking its signatures.

Mail uses the keys through ``resolvers/pgp_mail.py``. Cryptography runs in
worker threads: RSA key generation takes seconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailcue_server.errors import Conflict, Invalid, NotFound
from mailcue_server.mail import parts, pgp_keys
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.mail.pgp_keys import PGPKey
from mailcue_server.resolvers.access import may_reach, reachable_mailbox, reachable_mailboxes
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.resolvers.keyserver import VksClient
from mailcue_server.schema.types.gpg import (
    FetchKeyRequest,
    GenerateKeyRequest,
    GpgKeyExportResponse,
    GpgKeyListResponse,
    GpgKeyResponse,
    ImportKeyRequest,
    KeyserverAddressStatus,
    KeyserverPublishResponse,
)
from mailcue_server.store import gpg_keys, mailboxes
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.gpg_models import GpgKey

READ = "gpg:read"
WRITE = "gpg:write"
_BOX_PURPOSE = "gpg-private-key"
KEY_MEDIA_TYPE = "application/pgp-keys"  # RFC 3156 section 7


def key_view(row: GpgKey) -> GpgKeyResponse:
    """The API shape of a stored key (never its private half)."""
    return GpgKeyResponse(
        id=str(row.id),
        mailbox_address=row.address,
        fingerprint=row.fingerprint,
        key_id=row.key_id,
        uid_name=row.uid_name,
        uid_email=row.uid_email,
        algorithm=row.algorithm,
        key_length=row.key_length,
        created_at=row.key_created_at,
        expires_at=row.expires_at,
        is_private=row.is_private,
        is_active=row.is_active,
    )


def secret_box(ctx: Context) -> SecretBox:
    """The box private keys are sealed in, keyed by the server secret."""
    return SecretBox(ctx.services.secret_key, _BOX_PURPOSE)


def key_record(
    ctx: Context, key: PGPKey, address: str, facts: pgp_keys.KeyFacts
) -> gpg_keys.KeyRecord:
    """What is stored of ``key``: facts from the key, the private half sealed."""
    sealed = secret_box(ctx).seal(pgp_keys.private_armor(key)) if facts.is_private else None
    return gpg_keys.KeyRecord(
        address=address,
        fingerprint=facts.fingerprint,
        key_id=facts.key_id,
        key_ids=facts.key_ids,
        uid_name=facts.uid_name,
        uid_email=facts.uid_email,
        algorithm=facts.algorithm,
        key_length=facts.key_length,
        key_created_at=facts.created_at,
        expires_at=facts.expires_at,
        public_key=pgp_keys.public_armor(key),
        sealed_private_key=sealed,
    )


async def generate_key(ctx: Context, data: GenerateKeyRequest) -> GpgKeyResponse:
    """Make a key pair for a mailbox the caller may reach.

    Raises:
        NotFound: No such mailbox, or not the caller's.
        Invalid: Bad algorithm, size, name or expiry.
        Conflict: The mailbox already has a key.
    """
    mailbox = await reachable_mailbox(ctx, data.mailbox_address, WRITE)
    algorithm = data.algorithm.strip().upper()
    expires_at = pgp_keys.parse_expiry(data.expire, ctx.now())
    name = pgp_keys.check_name(data.name)
    if algorithm == "RSA" and data.key_length not in pgp_keys.RSA_SIZES:
        sizes = ", ".join(map(str, pgp_keys.RSA_SIZES))
        raise Invalid(f"key_length must be one of {sizes} for RSA")
    existing = await gpg_keys.mailbox_key(mailbox.address)
    if existing is not None:  # checked first: generation takes seconds
        raise Conflict(
            f"{mailbox.address} already has GPG key {existing.fingerprint}; delete it first"
        )
    key = await asyncio.to_thread(
        pgp_keys.generate_key,
        name=name,
        address=mailbox.address,
        algorithm=algorithm,
        key_length=data.key_length,
        expires_at=expires_at,
    )
    facts = pgp_keys.facts(key)
    row = await gpg_keys.save_key(
        key_record(ctx, key, mailbox.address, facts), mailbox_id=mailbox.id, owner_id=None
    )
    return key_view(row)


async def import_key(ctx: Context, data: ImportKeyRequest) -> GpgKeyResponse:
    """Import an armored public or private key.

    The address is ``mailbox_address`` or else the key's user id. For one of
    the caller's mailboxes the key becomes the mailbox's key; for any other
    address it is a public contact key of the caller. Importing the same key
    again refreshes it (and adds its private half if given).

    Raises:
        Invalid: Not one valid key; no address; a private key for an address
            that is not one of the caller's mailboxes.
        Conflict: The address already has another key.
    """
    principal = ctx.require_principal()
    principal.require_scope(WRITE)
    key = await asyncio.to_thread(pgp_keys.load_key, data.armored_key)
    facts = pgp_keys.facts(key)
    given = (data.mailbox_address or "").strip() or facts.uid_email
    if not given:
        raise Invalid("The key's user id has no email address; give mailbox_address")
    address = canonical_address(given).lower()
    return key_view(await _store_imported(ctx, principal, key, facts, address))


async def _store_imported(
    ctx: Context, principal: Principal, key: PGPKey, facts: pgp_keys.KeyFacts, address: str
) -> GpgKey:
    mailbox = await mailboxes.find_mailbox(address)
    if mailbox is not None and may_reach(principal, mailbox):
        record = key_record(ctx, key, mailbox.address, facts)
        return await gpg_keys.save_key(record, mailbox_id=mailbox.id, owner_id=None)
    if facts.is_private:
        raise Invalid(
            f"A private key can only be imported for one of your mailboxes; {address} is not one"
        )
    record = key_record(ctx, key, address, facts)
    return await gpg_keys.save_key(record, mailbox_id=None, owner_id=principal.user_id)


async def list_keys(ctx: Context) -> GpgKeyListResponse:
    """Keys of the mailboxes the caller may reach and the caller's contact keys (admins: all)."""
    principal = ctx.require_principal()
    principal.require_scope(READ)
    if principal.is_admin and principal.allowed_mailboxes is None:
        rows = await gpg_keys.list_keys(None, None)
    else:
        reachable = [m.id for m in await reachable_mailboxes(principal)]
        rows = await gpg_keys.list_keys(reachable, principal.user_id)
    return GpgKeyListResponse(keys=[key_view(row) for row in rows], total=len(rows))


async def _visible_keys(ctx: Context, address: str, scope: str) -> list[GpgKey]:
    """The keys at ``address`` the caller may see: the mailbox's first, then contact keys."""
    principal = ctx.require_principal()
    principal.require_scope(scope)
    clean = address.strip().lower()
    found: list[GpgKey] = []
    mailbox = await mailboxes.find_mailbox(clean)
    if mailbox is not None and may_reach(principal, mailbox):
        row = await gpg_keys.mailbox_key(clean)
        found.extend([row] if row is not None else [])
    own = await gpg_keys.contact_key(principal.user_id, clean)
    found.extend([own] if own is not None else [])
    if principal.is_admin and principal.allowed_mailboxes is None:
        seen = {row.id for row in found}
        found.extend(r for r in await gpg_keys.contact_keys_of_address(clean) if r.id not in seen)
    if not found:
        raise NotFound(f"No GPG key found for {address}")
    return found


async def get_key(ctx: Context, address: str) -> GpgKeyResponse:
    """The key of a mailbox (or the caller's contact key) by address.

    Raises:
        NotFound: No key the caller may see.
    """
    return key_view((await _visible_keys(ctx, address, READ))[0])


async def export_key(ctx: Context, address: str) -> GpgKeyExportResponse:
    """The armored public key (only ever the public half)."""
    row = (await _visible_keys(ctx, address, READ))[0]
    return GpgKeyExportResponse(
        mailbox_address=row.address, fingerprint=row.fingerprint, public_key=row.public_key
    )


async def delete_key(ctx: Context, address: str) -> None:
    """Delete every key at ``address`` the caller may see (the private half with it)."""
    await gpg_keys.delete_keys(await _visible_keys(ctx, address, WRITE))


async def publish_key(ctx: Context, address: str) -> KeyserverPublishResponse:
    """Upload the public key to the keyserver and ask it to verify the key's addresses.

    Raises:
        NotFound: No key the caller may see.
        KeyserverUnavailable: The keyserver is unreachable, failing or silent.
    """
    row = (await _visible_keys(ctx, address, WRITE))[0]
    client = VksClient(ctx.settings.keyserver_url, ctx.settings.keyserver_timeout)
    uploaded = await client.upload(row.public_key)
    answer = uploaded
    wanted = [a for a, state in uploaded.status.items() if state == "unpublished"]
    if uploaded.token and wanted:
        answer = await client.request_verify(uploaded.token, wanted)
    statuses = {**uploaded.status, **answer.status}
    published = bool(answer.key_fpr or uploaded.key_fpr)
    pending = sorted(a for a, state in statuses.items() if state == "pending")
    message = f"Key uploaded to {client.base_url}."
    if pending:
        message += f" Verification mail sent to {', '.join(pending)}: follow its link to publish."
    return KeyserverPublishResponse(
        published=published,
        key_fingerprint=(answer.key_fpr or uploaded.key_fpr or row.fingerprint).upper(),
        message=message,
        token=answer.token or uploaded.token,
        addresses=[KeyserverAddressStatus(address=a, status=s) for a, s in statuses.items()],
    )


async def fetch_key(ctx: Context, data: FetchKeyRequest) -> GpgKeyResponse:
    """Find the key published for an address on the keyserver and import it (public only).

    Raises:
        NotFound: The keyserver has no key for the address.
        KeyserverUnavailable: The keyserver is unreachable, failing or silent.
    """
    principal = ctx.require_principal()
    principal.require_scope(WRITE)
    address = canonical_address(data.address).lower()
    client = VksClient(ctx.settings.keyserver_url, ctx.settings.keyserver_timeout)
    armored = await client.by_email(address)
    if armored is None:
        raise NotFound(f"The keyserver has no key for {address}")
    key = await asyncio.to_thread(pgp_keys.load_key, armored)
    if not key.is_public:
        raise Invalid("The keyserver answered a private key")
    facts = pgp_keys.facts(key)
    return key_view(await _store_imported(ctx, principal, key, facts, address))


@dataclass(frozen=True, slots=True)
class KeyFile:
    """An armored public key as a download (``<address>.asc``)."""

    filename: str
    content_disposition: str
    data: bytes
    media_type: str = KEY_MEDIA_TYPE


async def export_key_file(ctx: Context, address: str) -> KeyFile:
    """The armored public key as a ``.asc`` file (RFC 3156 section 7 media type)."""
    export = await export_key(ctx, address)
    name = parts.safe_filename(f"{export.mailbox_address}.asc", "1", KEY_MEDIA_TYPE)
    fallback = parts.ascii_filename(name, "1", KEY_MEDIA_TYPE)
    return KeyFile(
        filename=name,
        content_disposition=parts.content_disposition(name, fallback),
        data=export.public_key.encode("ascii"),
    )
