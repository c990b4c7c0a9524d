"""Queries on OpenPGP keys: the key of a mailbox, users' contact keys, lookups by key id.

The caller (``resolvers/gpg.py``) has read the facts from the key and sealed
the private half; rows here only hold them. Addresses are lowercased. See
``store/gpg_models.py`` for the two kinds of key and their ``slot``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from mailcue_server.errors import Conflict
from mailcue_server.store.gpg_models import GpgKey


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What is stored of a key (all read from the key, except the sealed private armor)."""

    address: str
    fingerprint: str
    key_id: str
    key_ids: tuple[str, ...]
    uid_name: str | None
    uid_email: str | None
    algorithm: str
    key_length: int | None
    key_created_at: datetime
    expires_at: datetime | None
    public_key: str
    sealed_private_key: str | None


def mailbox_slot(address: str) -> str:
    return f"m:{address.lower()}"


def contact_slot(owner_id: UUID | str, address: str) -> str:
    return f"c:{owner_id}:{address.lower()}"


async def mailbox_key(address: str) -> GpgKey | None:
    """The key of our mailbox at ``address``, if it has one."""
    return await GpgKey.get_or_none(slot=mailbox_slot(address))


async def contact_key(owner_id: UUID | str, address: str) -> GpgKey | None:
    """The public key ``owner_id`` imported for an outside ``address``."""
    return await GpgKey.get_or_none(slot=contact_slot(owner_id, address))


async def contact_keys_of_address(address: str) -> list[GpgKey]:
    """Every user's contact key for ``address`` (an admin's view)."""
    return (
        await GpgKey.filter(address=address.lower(), mailbox_id=None).order_by("created_at").all()
    )


async def list_keys(
    mailbox_ids: Iterable[UUID | str] | None, owner_id: UUID | str | None
) -> list[GpgKey]:
    """Keys of the given mailboxes plus ``owner_id``'s contact keys; ``None`` ids: every key."""
    if mailbox_ids is None:
        query = GpgKey.all()
    else:
        query = GpgKey.filter(Q(mailbox_id__in=list(mailbox_ids)) | Q(owner_id=owner_id))
    return await query.order_by("address", "created_at")


async def find_by_key_ids(key_ids: Iterable[str], owner_id: UUID | str | None) -> list[GpgKey]:
    """Keys having one of ``key_ids`` (primary or subkey): mailbox keys and ``owner_id``'s.

    A signature names the (sub)key that made it; this is how its public key is found.
    """
    wanted = [k.upper() for k in key_ids if k.isalnum()]
    if not wanted:
        return []
    found = Q(key_ids__contains=wanted[0])
    for key_id in wanted[1:]:
        found |= Q(key_ids__contains=key_id)
    mine = Q(mailbox_id__isnull=False) | Q(owner_id=owner_id)
    rows = await GpgKey.filter(found & mine).all()
    # LIKE matched a substring: keep rows holding a whole id.
    return [row for row in rows if set(row.key_ids.split()) & set(wanted)]


async def save_key(
    record: KeyRecord, *, mailbox_id: UUID | None, owner_id: UUID | str | None
) -> GpgKey:
    """Store a key in its slot, or refresh the one there when it is the same key.

    The same fingerprint again updates the stored armor (new user ids or
    signatures) and keeps an already stored private key; another key in a
    taken slot is refused.

    Raises:
        Conflict: The slot holds a different key.
    """
    slot = (
        mailbox_slot(record.address)
        if mailbox_id is not None
        else contact_slot(owner_id or "", record.address)
    )
    values: dict[str, Any] = {
        "address": record.address.lower(),
        "mailbox_id": mailbox_id,
        "owner_id": owner_id if mailbox_id is None else None,
        "fingerprint": record.fingerprint,
        "key_id": record.key_id,
        "key_ids": " ".join(record.key_ids),
        "uid_name": record.uid_name,
        "uid_email": record.uid_email,
        "algorithm": record.algorithm,
        "key_length": record.key_length,
        "key_created_at": record.key_created_at,
        "expires_at": record.expires_at,
        "public_key": record.public_key,
    }
    existing = await GpgKey.get_or_none(slot=slot)
    if existing is not None:
        if existing.fingerprint != record.fingerprint:
            raise Conflict(
                f"{record.address} already has GPG key {existing.fingerprint}; delete it first"
            )
        existing.update_from_dict(values)
        if record.sealed_private_key is not None:
            existing.sealed_private_key = record.sealed_private_key
        await existing.save()
        return existing
    try:
        return await GpgKey.create(
            slot=slot, sealed_private_key=record.sealed_private_key, **values
        )
    except IntegrityError as exc:  # the same slot filled by a concurrent request
        raise Conflict(f"{record.address} already has a GPG key; delete it first") from exc


async def delete_keys(keys: Iterable[GpgKey]) -> int:
    ids = [key.id for key in keys]
    if not ids:
        return 0
    return await GpgKey.filter(id__in=ids).delete()
