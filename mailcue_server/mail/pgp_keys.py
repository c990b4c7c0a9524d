"""OpenPGP keys with pgpy: generate, read what a key says of itself, validate an import, armor.

Everything here is pure and CPU-bound (RSA generation takes a while): callers
run it in a worker thread. The facts a key reports (fingerprint, ids,
algorithm, size, dates, user id) always come from the key material, never
from what a caller claims (RFC 9580 section 5.5 and 5.2.3).

pgpy 0.6.0 checks no self-signature, revocation or expiry on its own, so
:func:`load_key` and :func:`usable_for` do (STACK-NOTES, "OpenPGP with pgpy").
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

from cryptography.utils import CryptographyDeprecationWarning

from mailcue_server.errors import Invalid

with warnings.catch_warnings():
    # pgpy imports imghdr (deprecated in 3.11, gone in 3.13); nothing to act on here.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pgpy
    from pgpy.constants import (
        CompressionAlgorithm,
        EllipticCurveOID,
        HashAlgorithm,
        KeyFlags,
        PubKeyAlgorithm,
        SecurityIssues,
        SymmetricKeyAlgorithm,
    )

_PGPY_MODULES = r"pgpy(\.|$)"


def quiet_pgpy() -> None:
    """Silence pgpy's known warnings; the one place they are filtered (STACK-NOTES).

    pgpy takes CFB, 3DES and Camellia from cryptography's deprecated spots, and
    warns "TODO: ... not yet implemented" on every verify (this package checks
    what it leaves out). Called by every entry point, not only at import: a
    test runner restores the filters around each test.
    """
    for category in (CryptographyDeprecationWarning, UserWarning):
        if not any(
            entry[0] == "ignore"
            and entry[2] is category
            and getattr(entry[3], "pattern", None) == _PGPY_MODULES
            for entry in warnings.filters
        ):
            warnings.filterwarnings("ignore", category=category, module=_PGPY_MODULES)


quiet_pgpy()

__all__ = [
    "MAX_ARMOR_CHARS",
    "RSA_SIZES",
    "HashAlgorithm",
    "KeyFacts",
    "PGPKey",
    "SecurityIssues",
    "SymmetricKeyAlgorithm",
    "check_key",
    "check_name",
    "facts",
    "generate_key",
    "is_revoked",
    "load_key",
    "parse_expiry",
    "parse_stored",
    "pgpy",
    "private_armor",
    "public_armor",
    "quiet_pgpy",
    "usable_for",
]

PGPKey: TypeAlias = Any
"""A ``pgpy.PGPKey`` (pgpy ships no type information)."""
RSA_SIZES = (2048, 3072, 4096)
MAX_ARMOR_CHARS = 1_000_000
HASHES = [HashAlgorithm.SHA512, HashAlgorithm.SHA384, HashAlgorithm.SHA256]
CIPHERS = [
    SymmetricKeyAlgorithm.AES256,
    SymmetricKeyAlgorithm.AES192,
    SymmetricKeyAlgorithm.AES128,
]
COMPRESSION = [
    CompressionAlgorithm.ZLIB,
    CompressionAlgorithm.ZIP,
    CompressionAlgorithm.Uncompressed,
]
_SIGN = {KeyFlags.Sign}
_ENCRYPT = {KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage}
_ALGORITHM_NAMES = {
    PubKeyAlgorithm.RSAEncryptOrSign: "RSA",
    PubKeyAlgorithm.RSAEncrypt: "RSA",
    PubKeyAlgorithm.RSASign: "RSA",
    PubKeyAlgorithm.DSA: "DSA",
    PubKeyAlgorithm.ElGamal: "ElGamal",
    PubKeyAlgorithm.ECDSA: "ECDSA",
    PubKeyAlgorithm.ECDH: "ECDH",
    PubKeyAlgorithm.EdDSA: "EdDSA",
}
# GnuPG counts the 25519 curves as 255 bits; report what `gpg --list-keys` shows.
_CURVE_BITS = {EllipticCurveOID.Ed25519: 255, EllipticCurveOID.Curve25519: 255}
_ARMOR_BEGIN = re.compile(r"-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----")
_EXPIRE = re.compile(r"(\d{1,5})([dwmy]?)")
_EXPIRE_UNITS = {"": 1, "d": 1, "w": 7, "m": 30, "y": 365}
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f<>]")


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What an OpenPGP key says of itself.

    Attributes:
        fingerprint: 40 (v4) upper-case hex digits.
        key_id: The primary key's id: the last 16 digits of the fingerprint.
        key_ids: The primary key's id and every subkey's.
        algorithm: ``RSA``, ``EdDSA``, ``ECDSA``, ``DSA``... of the primary key.
        key_length: Bits of the primary key (255 for the 25519 curves, as GnuPG says).
        uid_name: The name of the first user id with a valid self-signature.
        uid_email: Its email address, lowercased, or ``None``.
        emails: Every user id's address, lowercased.
        is_private: The secret key material is present.
    """

    fingerprint: str
    key_id: str
    key_ids: tuple[str, ...]
    algorithm: str
    key_length: int | None
    created_at: datetime
    expires_at: datetime | None
    uid_name: str | None
    uid_email: str | None
    emails: tuple[str, ...]
    is_private: bool
    can_sign: bool
    can_encrypt: bool

    @property
    def uid(self) -> str | None:
        """The user id as GnuPG prints it: ``Name <email>``."""
        if self.uid_email and self.uid_name:
            return f"{self.uid_name} <{self.uid_email}>"
        return self.uid_name or self.uid_email


def parse_expiry(value: str | None, now: datetime) -> datetime | None:
    """A new key's expiry, spelled as GnuPG does: ``0``/``never``, ``90``, ``2w``, ``1y``, a date.

    Raises:
        Invalid: Unreadable, or not in the future.
    """
    text = (value or "").strip().lower()
    if text in ("", "0", "never", "none"):
        return None
    match = _EXPIRE.fullmatch(text)
    if match:
        when = now + timedelta(days=int(match.group(1)) * _EXPIRE_UNITS[match.group(2)])
    else:
        try:
            when = datetime.fromisoformat(text.replace("z", "+00:00"))
        except ValueError:
            raise Invalid(
                f"expire {value!r} is not understood: use 0 (never), a number of days, "
                "a count with d/w/m/y (such as 2y), or an ISO date"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if when <= now:
        raise Invalid(f"expire {value!r} is not in the future")
    return when


def generate_key(
    *,
    name: str,
    address: str,
    algorithm: str,
    key_length: int,
    expires_at: datetime | None,
) -> PGPKey:
    """A new key pair in GnuPG's default shape: a signing primary key and an encryption subkey.

    RSA: both keys ``key_length`` bits. ECC: Ed25519 primary key, Curve25519
    ECDH subkey. The primary key also certifies (RFC 9580 section 5.2.3.29).

    Raises:
        Invalid: Unknown algorithm, RSA size outside :data:`RSA_SIZES`, bad name.
    """
    quiet_pgpy()
    name = check_name(name)
    if algorithm == "RSA":
        if key_length not in RSA_SIZES:
            raise Invalid(f"key_length must be one of {', '.join(map(str, RSA_SIZES))} for RSA")
        primary = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, key_length)
        subkey = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, key_length)
    elif algorithm == "ECC":
        primary = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
        subkey = pgpy.PGPKey.new(PubKeyAlgorithm.ECDH, EllipticCurveOID.Curve25519)
    else:
        raise Invalid("algorithm must be RSA or ECC")
    lifetime = expires_at - primary.created if expires_at else None
    primary.add_uid(
        pgpy.PGPUID.new(name, email=address),
        usage=_SIGN | {KeyFlags.Certify},
        hashes=HASHES,
        ciphers=CIPHERS,
        compression=COMPRESSION,
        key_expiration=lifetime,
        primary=True,
    )
    primary.add_subkey(subkey, usage=_ENCRYPT, key_expiration=lifetime)
    # Read back from its armor: dates then have the whole seconds the key stores.
    return parse_stored(str(primary))


def check_name(name: str) -> str:
    """A user id name: 1-255 printable characters, no angle brackets (they delimit the address)."""
    clean = name.strip()
    if not 1 <= len(clean) <= 255 or _NAME_FORBIDDEN.search(clean):
        raise Invalid("name must be 1-255 printable characters without '<' or '>'")
    return clean


def load_key(armored: str) -> PGPKey:
    """Parse and validate one armored key (public or private) as given to the import route.

    Raises:
        Invalid: Not exactly one readable key; no user id with a valid
            self-signature; revoked; or a private key locked by a passphrase.
    """
    quiet_pgpy()
    if len(armored) > MAX_ARMOR_CHARS:
        raise Invalid("armored_key is too large")
    blocks = len(_ARMOR_BEGIN.findall(armored))
    if blocks != 1:
        raise Invalid(
            "armored_key must hold one ASCII-armored key block "
            "(-----BEGIN PGP PUBLIC KEY BLOCK----- or ...PRIVATE KEY BLOCK-----)"
            if blocks == 0
            else "armored_key holds several key blocks; import one key at a time"
        )
    try:
        key, found = pgpy.PGPKey.from_blob(armored.strip())
    except Exception:  # pgpy raises ValueError, PGPError, struct/IndexError on bad data
        raise Invalid("armored_key is not a readable OpenPGP key") from None
    if sum(1 for item in found.values() if item.is_primary) > 1:
        raise Invalid("armored_key holds several keys; import one key at a time")
    check_key(key)
    return key


def check_key(key: PGPKey) -> None:
    """The checks pgpy leaves to us: a self-signed user id, not revoked, usable secret.

    Raises:
        Invalid: As :func:`load_key`.
    """
    if not key.is_public and key.is_protected:
        raise Invalid(
            "the private key is protected by a passphrase; export it without one "
            "(or import only the public key)"
        )
    if not any(_self_signed(key, uid) for uid in key.userids):
        raise Invalid("the key has no user id with a valid self-signature")
    if is_revoked(key):
        raise Invalid(f"key {key.fingerprint} is revoked")


def _self_signed(key: PGPKey, uid: Any) -> bool:
    try:
        return bool(key.verify(uid)) and uid.is_uid
    except Exception:  # no self-signature at all, or one pgpy cannot parse
        return False


def is_revoked(key: PGPKey) -> bool:
    """A key revocation signature made by the key itself and valid (RFC 9580 section 5.2.1.11)."""
    return any(_verifies(key, signature) for signature in key.revocation_signatures)


def _verifies(key: PGPKey, signature: Any) -> bool:
    try:
        return bool(key.verify(key, signature))
    except Exception:  # a malformed or foreign revocation does not count
        return False


def facts(key: PGPKey) -> KeyFacts:
    """Read :class:`KeyFacts` from the key material and its self-signatures."""
    quiet_pgpy()
    uid = next((u for u in key.userids if _self_signed(key, u)), None)
    emails = tuple(dict.fromkeys(u.email.lower() for u in key.userids if u.email))
    fingerprint = str(key.fingerprint).replace(" ", "").upper()
    size = key.key_size  # bits for RSA/DSA, the curve for ECC
    bits = size if isinstance(size, int) else _CURVE_BITS.get(size, getattr(size, "key_size", 0))
    return KeyFacts(
        fingerprint=fingerprint,
        key_id=fingerprint[-16:],
        key_ids=tuple(k.fingerprint.keyid.upper() for k in _all_keys(key)),
        algorithm=_ALGORITHM_NAMES.get(key.key_algorithm, key.key_algorithm.name),
        key_length=bits,
        created_at=key.created,
        expires_at=key.expires_at,
        uid_name=(uid.name or None) if uid else None,
        uid_email=(uid.email.lower() or None) if uid else None,
        emails=emails,
        is_private=not key.is_public,
        can_sign=_component(key, _SIGN) is not None,
        can_encrypt=_component(key, _ENCRYPT) is not None,
    )


def public_armor(key: PGPKey) -> str:
    """The ASCII-armored public key (RFC 9580 section 6), never the secret parts."""
    return str(key.pubkey if not key.is_public else key)


def private_armor(key: PGPKey) -> str:
    """The ASCII-armored secret key, for sealing at rest only."""
    if key.is_public:
        raise ValueError("not a private key")
    return str(key)


def parse_stored(armored: str) -> PGPKey:
    """A key this server stored itself (already validated on the way in)."""
    quiet_pgpy()
    key, _ = pgpy.PGPKey.from_blob(armored)
    return key


def usable_for(key: PGPKey, purpose: Literal["sign", "encrypt"], now: datetime) -> str | None:
    """Why ``key`` cannot ``purpose`` now, or ``None`` when it can."""
    quiet_pgpy()
    if is_revoked(key):
        return "is revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return f"expired on {key.expires_at:%Y-%m-%d}"
    component = _component(key, _SIGN if purpose == "sign" else _ENCRYPT)
    if component is None:
        return f"has no {'signing' if purpose == 'sign' else 'encryption'} key"
    if purpose == "sign" and (key.is_public or key.is_protected):
        return "has no usable private key"
    return None


def _all_keys(key: PGPKey) -> Iterator[PGPKey]:
    yield key
    yield from key.subkeys.values()


def _component(key: PGPKey, flags: set[KeyFlags]) -> PGPKey | None:
    """The primary key or subkey that may be used for ``flags`` (RFC 9580 section 5.2.3.29)."""
    return next((c for c in _all_keys(key) if _usage(c) & flags), None)


def _usage(component: PGPKey) -> set[KeyFlags]:
    try:
        return set(component._get_key_flags())  # pgpy's own lookup (uid or binding signature)
    except Exception:  # a subkey without a binding signature is not usable
        return set()
