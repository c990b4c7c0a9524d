"""OpenPGP keys: a mailbox's own key pair, and public keys of outside correspondents.

Only ``store/`` imports this module. Two kinds of row share the table:

- a *mailbox key* (``mailbox`` set): the key of one of our mailboxes, public
  and usually private; at most one per mailbox. Anyone may encrypt to it;
  only who may reach the mailbox may see or change it.
- a *contact key* (``owner`` set): the public key of an address that is not
  one of our mailboxes, imported by one user for their own use (encrypting
  to that address, verifying its signatures); at most one per user and address.

``slot`` makes both "at most one" rules a unique index. Every fact about the
key (fingerprint, ids, algorithm, size, dates, user id) is read from the key
itself by ``mail/pgp_keys.py``. The private key is stored armored and sealed
with a key derived from the server secret (``store/credentials.SecretBox``).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from tortoise import fields

from mailcue_server.store.mail_models import Mailbox
from mailcue_server.store.model_base import StoreModel
from mailcue_server.store.models import User


class GpgKey(StoreModel):
    """One OpenPGP key: its public armor, its sealed private armor, and what it says of itself."""

    id = fields.UUIDField(primary_key=True)
    # "m:<address>" for a mailbox key, "c:<owner id>:<address>" for a contact key.
    slot = fields.CharField(max_length=400, unique=True)
    address = fields.CharField(max_length=320, db_index=True)
    mailbox: fields.ForeignKeyNullableRelation[Mailbox] = fields.ForeignKeyField(
        "mailcue.Mailbox", related_name="gpg_keys", null=True, on_delete=fields.CASCADE
    )
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="gpg_keys", null=True, on_delete=fields.CASCADE
    )
    fingerprint = fields.CharField(max_length=64)
    key_id = fields.CharField(max_length=16)
    # The ids of the primary key and every subkey, space-separated: a signature
    # names the (sub)key that made it, and this finds the key it belongs to.
    key_ids = fields.TextField()
    uid_name = fields.CharField(max_length=255, null=True)
    uid_email = fields.CharField(max_length=320, null=True)
    algorithm = fields.CharField(max_length=32)
    key_length: int | None = fields.IntField(null=True)
    key_created_at = fields.DatetimeField()
    expires_at: datetime | None = fields.DatetimeField(null=True)
    public_key = fields.TextField()
    sealed_private_key: str | None = fields.TextField(null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    mailbox_id: UUID | None
    owner_id: UUID | None

    class Meta:
        table = "gpg_keys"

    @property
    def is_private(self) -> bool:
        return self.sealed_private_key is not None
