"""OpenPGP keys, keyserver publishing, and the PGP facts of an email.

No shape here ever carries private key material: a key's secret half is
stored sealed and used only inside the server.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum

import strawberry


@strawberry.type(name="GpgKey", description="A mailbox's key, or an imported public key.")
class GpgKeyResponse:
    id: str
    mailbox_address: str
    fingerprint: str
    key_id: str
    created_at: datetime = strawberry.field(description="When the key was made (from the key).")
    is_private: bool = strawberry.field(description="The server holds the secret key too.")
    is_active: bool
    uid_name: str | None = None
    uid_email: str | None = None
    algorithm: str | None = None
    key_length: int | None = None
    expires_at: datetime | None = None


@strawberry.type(name="GpgKeyList")
class GpgKeyListResponse:
    keys: list[GpgKeyResponse]
    total: int


@strawberry.type(name="GpgKeyExport", description="An ASCII-armored public key.")
class GpgKeyExportResponse:
    mailbox_address: str
    fingerprint: str
    public_key: str


@strawberry.type(name="KeyserverAddressStatus")
class KeyserverAddressStatus:
    address: str
    status: str = strawberry.field(
        description="The keyserver's word: unpublished, pending, published or revoked."
    )


@strawberry.type(name="KeyserverPublish", description="What the keyserver answered.")
class KeyserverPublishResponse:
    published: bool
    key_fingerprint: str
    message: str
    token: str | None = None
    addresses: list[KeyserverAddressStatus] = dataclasses.field(default_factory=list)


@strawberry.enum(name="SignatureStatus")
class SignatureStatus(Enum):
    """The verdict on a PGP signature."""

    VALID = "valid"
    INVALID = "invalid"
    NO_PUBLIC_KEY = "no_public_key"
    EXPIRED_KEY = "expired_key"
    ERROR = "error"


@strawberry.type(name="GpgEmailInfo", description="The PGP/MIME facts of one email.")
class GpgEmailInfo:
    is_signed: bool = False
    is_encrypted: bool = False
    signature_status: SignatureStatus | None = None
    signer_fingerprint: str | None = None
    signer_key_id: str | None = None
    signer_uid: str | None = None
    decrypted: bool = False
    encryption_key_ids: list[str] = dataclasses.field(default_factory=list)


@strawberry.input(name="GpgGenerateInput")
class GenerateKeyRequest:
    mailbox_address: str
    name: str = "MailCue User"
    algorithm: str = strawberry.field(
        default="RSA", description="RSA, or ECC (Ed25519 with a Curve25519 subkey)."
    )
    key_length: int = strawberry.field(default=2048, description="RSA: 2048, 3072 or 4096.")
    expire: str | None = None


@strawberry.input(name="GpgImportInput")
class ImportKeyRequest:
    armored_key: str
    mailbox_address: str | None = None


@strawberry.input(name="GpgFetchInput")
class FetchKeyRequest:
    address: str
