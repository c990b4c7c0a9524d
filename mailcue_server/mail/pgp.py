"""Reading OpenPGP mail: signed or encrypted, what it decrypts to, whether the signature holds.

Recognised: RFC 3156 ``multipart/signed`` and ``multipart/encrypted`` at
the top of the message (sign-then-encrypt nests the first in the second,
section 6.1; a combined signed-and-encrypted OpenPGP message is section
6.2), and inline PGP in the first plain-text part (an armored ``PGP
MESSAGE`` or a cleartext-signed ``PGP SIGNED MESSAGE``, RFC 9580 section 7).

Reading takes two steps so that the caller fetches only the keys it needs:
:func:`open_message` decrypts with the recipient's secret keys and says
which key ids signed; :func:`check_signature` then checks the signature with
the public key the caller found for those ids. Both are pure and CPU-bound.
:func:`offered_keys` finds the public keys a message carries (an
``application/pgp-keys`` part, an ``Autocrypt`` header field).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import Message
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes

from mailcue_server.mail import full_parse
from mailcue_server.mail.pgp_keys import (
    PGPKey,
    SecurityIssues,
    facts,
    is_revoked,
    pgpy,
    quiet_pgpy,
)
from mailcue_server.mail.pgp_mime import (
    canonical,
    entity_header,
    header_fields,
    is_content_field,
    split_head_canonical,
    split_parts,
)

SignatureStatus = Literal["valid", "invalid", "no_public_key", "expired_key", "error"]
_ARMORED = re.compile(
    r"-----BEGIN PGP (MESSAGE|SIGNED MESSAGE)-----.*?-----END PGP (?:MESSAGE|SIGNATURE)-----",
    re.DOTALL,
)
_KEY_BLOCK = re.compile(
    r"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?-----END PGP PUBLIC KEY BLOCK-----", re.DOTALL
)
_INLINE_HEAD = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
_MAX_OFFERED = 5


@dataclass(frozen=True, slots=True)
class PendingSignature:
    """A signature found while opening a message, not yet checked.

    Attributes:
        signer_ids: The key ids the signature names (upper-case hex).
        signer_fingerprint: The issuer fingerprint it names, when it does.
        data: The exact signed bytes of a detached signature; ``None`` when the
            signature travels inside ``signed`` (a PGP message).
        signed: A ``PGPSignature`` (detached) or ``PGPMessage`` (embedded,
            cleartext); ``None`` when it could not be read.
    """

    signer_ids: tuple[str, ...]
    signer_fingerprint: str | None
    data: bytes | None
    signed: Any


@dataclass(frozen=True, slots=True)
class Opened:
    """What :func:`open_message` found.

    Attributes:
        decrypted_message: The readable message after decryption: the outer
            header fields followed by the decrypted entity, for
            ``mime.parse_detail``; ``None`` when nothing was decrypted.
        encryption_key_ids: Key ids the message is encrypted to.
        problem: Why something could not be read (damaged ciphertext...).
    """

    is_signed: bool = False
    is_encrypted: bool = False
    decrypted: bool = False
    encryption_key_ids: tuple[str, ...] = ()
    decrypted_message: bytes | None = None
    signature: PendingSignature | None = None
    problem: str | None = None

    @property
    def is_pgp(self) -> bool:
        return self.is_signed or self.is_encrypted


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The verdict on a signature; the signer fields are those of the key, when known."""

    status: SignatureStatus
    fingerprint: str | None = None
    key_id: str | None = None
    uid: str | None = None


def open_message(raw: bytes, secret_keys: Sequence[PGPKey] = ()) -> Opened:
    """Recognise, and where a secret key fits, decrypt an OpenPGP message.

    Args:
        raw: The message exactly as stored.
        secret_keys: Private keys of the mailbox reading it.

    Returns:
        What was found; never raises on malformed mail.
    """
    quiet_pgpy()
    data = canonical(raw)
    head, body = split_head_canonical(data)
    header = entity_header(data)
    ctype = header.get_content_type()
    protocol = str(header.get_param("protocol", "")).lower()
    boundary = header.get_boundary()
    if ctype == "multipart/encrypted" and protocol == "application/pgp-encrypted" and boundary:
        return _open_encrypted(head, split_parts(body, boundary), secret_keys)
    if ctype == "multipart/signed" and protocol == "application/pgp-signature" and boundary:
        return Opened(is_signed=True, signature=_detached(split_parts(body, boundary)))
    return _open_inline(data, head, secret_keys)


def check_signature(
    pending: PendingSignature | None, keys: Sequence[PGPKey], now: datetime
) -> SignatureCheck:
    """Check a signature against the public keys the caller found for its signer ids.

    ``valid`` needs a known key, a signature that verifies, and a key that is
    neither revoked nor expired (``expired_key``). An unknown key gives
    ``no_public_key`` with the fingerprint the signature names.
    """
    quiet_pgpy()
    if pending is None or pending.signed is None:
        return SignatureCheck("error")
    key = next((k for k in keys if set(facts(k).key_ids) & set(pending.signer_ids)), None)
    if key is None:
        named = pending.signer_ids[0] if pending.signer_ids else None
        return SignatureCheck("no_public_key", pending.signer_fingerprint, named)
    known = facts(key)
    signer = SignatureCheck("valid", known.fingerprint, known.key_id, known.uid)
    public = key if key.is_public else key.pubkey
    try:
        if pending.data is not None:
            verification = public.verify(pending.data, pending.signed)
        else:
            verification = public.verify(pending.signed)
        expired = not verification and _only_expired(verification)
    except Exception:  # pgpy raises on signatures it cannot process
        return replace(signer, status="error")
    if expired or (verification and known.expires_at is not None and known.expires_at <= now):
        return replace(signer, status="expired_key")
    if not verification or is_revoked(key):
        return replace(signer, status="invalid")
    return signer


def _only_expired(verification: Any) -> bool:
    """pgpy refused only because the key has expired, and the signature itself holds.

    pgpy checks the key's expiry before the signature and then skips the
    signature; GnuPG still checks it and says "expired key" (EXPKEYSIG) only
    when it holds. So the signature is checked here, with the key's material.
    """
    refused = list(verification.bad_signatures)
    if not refused or any(item.issues != SecurityIssues.Expired for item in refused):
        return False
    for item in refused:
        digest = getattr(hashes, item.signature.hash_algorithm.name)()
        data = item.signature.hashdata(item.subject)
        if item.by._key.verify(data, item.signature.__sig__, digest) is not True:
            return False
    return True


def offered_keys(raw: bytes) -> list[str]:
    """Armored public keys a message offers: ``application/pgp-keys`` parts and ``Autocrypt``.

    The Autocrypt header's ``keydata`` is the base64 of a binary key
    (https://autocrypt.org/level1.html#the-autocrypt-header); it is armored
    here so every key goes through the same import. At most a few are returned.
    """
    quiet_pgpy()
    message, _ = full_parse.parse(raw)
    found: list[str] = []
    for value in message.get_all("Autocrypt") or []:
        armored = _autocrypt_key(str(value))
        if armored:
            found.append(armored)
    for part in message.walk():
        if part.get_content_type() != "application/pgp-keys" or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            found.extend(_KEY_BLOCK.findall(payload.decode("ascii", "replace")))
    return list(dict.fromkeys(found))[:_MAX_OFFERED]


def _autocrypt_key(value: str) -> str | None:
    attributes = dict(
        (name.strip().lower(), content.strip())
        for name, _, content in (item.partition("=") for item in value.split(";"))
    )
    try:
        binary = base64.b64decode("".join(attributes.get("keydata", "").split()), validate=True)
        key, _ = pgpy.PGPKey.from_blob(binary)
    except (binascii.Error, ValueError):
        return None
    except Exception:  # pgpy's other errors on damaged key data
        return None
    return str(key) if key.is_public else None


def _open_encrypted(head: bytes, parts: list[bytes], secret_keys: Sequence[PGPKey]) -> Opened:
    """RFC 3156 section 4: a ``Version: 1`` control part, then the ciphertext."""
    if len(parts) < 2:
        return Opened(is_encrypted=True, problem="the encrypted message has no ciphertext part")
    try:
        ciphertext = pgpy.PGPMessage.from_blob(_part_payload(parts[1]))
        recipients = tuple(sorted(str(i).upper() for i in ciphertext.encrypters))
    except Exception:  # pgpy raises ValueError, PGPError and parser errors on damaged data
        return Opened(is_encrypted=True, problem="the ciphertext is not a readable PGP message")
    opened = _decrypt(ciphertext, secret_keys)
    if opened is None:
        return Opened(is_encrypted=True, encryption_key_ids=recipients)
    if isinstance(opened, str):
        return Opened(is_encrypted=True, encryption_key_ids=recipients, problem=opened)
    entity = canonical(_literal_bytes(opened))
    signature = _embedded(opened)
    inner = entity_header(entity)
    inner_boundary = inner.get_boundary()
    inner_signed = (
        inner.get_content_type() == "multipart/signed"
        and str(inner.get_param("protocol", "")).lower() == "application/pgp-signature"
        and inner_boundary is not None
    )
    if signature is None and inner_signed and inner_boundary is not None:
        _, inner_body = split_head_canonical(entity)
        signature = _detached(split_parts(inner_body, inner_boundary))
    return Opened(
        is_signed=signature is not None or inner_signed,
        is_encrypted=True,
        decrypted=True,
        encryption_key_ids=recipients,
        decrypted_message=_outer(head) + entity,
        signature=signature,
    )


def _decrypt(ciphertext: Any, secret_keys: Sequence[PGPKey]) -> Any:
    """The decrypted message; ``None`` without a fitting key; a reason string on failure."""
    wanted = {str(i).upper() for i in ciphertext.encrypters}
    anonymous = "0000000000000000" in wanted  # RFC 9580 section 5.1: a wildcard recipient
    for key in secret_keys:
        if key.is_public or not (anonymous or wanted & set(facts(key).key_ids)):
            continue
        try:
            return key.decrypt(ciphertext)
        except Exception:  # a damaged session key or ciphertext
            if not anonymous:
                return "the message could not be decrypted with the mailbox's key"
    return None


def _detached(parts: list[bytes]) -> PendingSignature:
    """RFC 3156 section 5: the first part is signed as it stands; the second is the signature."""
    if len(parts) < 2:
        return PendingSignature((), None, None, None)
    try:
        signature = pgpy.PGPSignature.from_blob(_part_payload(parts[1]))
        ids, fingerprint = _issuers([signature])
    except Exception:  # pgpy raises several kinds on damaged signatures
        return PendingSignature((), None, parts[0], None)
    return PendingSignature(ids, fingerprint, parts[0], signature)


def _embedded(message: Any) -> PendingSignature | None:
    """Signatures inside a PGP message (RFC 3156 section 6.2, inline PGP)."""
    try:
        if not message.is_signed:
            return None
        ids, fingerprint = _issuers(list(message.signatures))
    except Exception:  # damaged signature packets
        return PendingSignature((), None, None, None)
    return PendingSignature(ids, fingerprint, None, message)


def _issuers(signatures: list[Any]) -> tuple[tuple[str, ...], str | None]:
    """The key ids the signatures name, and the first issuer fingerprint (RFC 9580 5.2.3.35)."""
    ids = tuple(str(s.signer).upper() for s in signatures)
    first = signatures[0].signer_fingerprint if signatures else None
    return ids, str(first or "").replace(" ", "").upper() or None


def _open_inline(data: bytes, head: bytes, secret_keys: Sequence[PGPKey]) -> Opened:
    """Inline PGP in the first plain-text part."""
    text = _first_text(data)
    found = _ARMORED.search(text) if text else None
    if found is None:
        return Opened()
    try:
        # pgpy reads cleartext lines split on LF alone (RFC 9580 section 7.2 hashes CRLF).
        message = pgpy.PGPMessage.from_blob(found.group(0).replace("\r\n", "\n"))
        encrypted = bool(message.is_encrypted)
        recipients = tuple(sorted(str(i).upper() for i in message.encrypters)) if encrypted else ()
    except Exception:  # damaged armor
        kind_encrypted = found.group(1) == "MESSAGE"
        return Opened(
            is_signed=not kind_encrypted,
            is_encrypted=kind_encrypted,
            problem="the inline PGP block is not readable",
        )
    if not encrypted:
        signature = _embedded(message)
        return Opened(is_signed=signature is not None, signature=signature)
    opened = _decrypt(message, secret_keys)
    if opened is None or isinstance(opened, str):
        problem = opened if isinstance(opened, str) else None
        return Opened(is_encrypted=True, encryption_key_ids=recipients, problem=problem)
    signature = _embedded(opened)
    plain = canonical(_literal_bytes(opened))
    return Opened(
        is_signed=signature is not None,
        is_encrypted=True,
        decrypted=True,
        encryption_key_ids=recipients,
        decrypted_message=_outer(head) + _INLINE_HEAD + b"\r\n" + plain,
        signature=signature,
    )


def _first_text(data: bytes) -> str:
    message, _ = full_parse.parse(data)
    for part in message.walk():
        if part.get_content_type() == "text/plain" and part.get_content_disposition() is None:
            return _text_of(part)
        if part.get_content_type() in ("multipart/encrypted", "multipart/signed"):
            break
    return ""


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _part_payload(part: bytes) -> str:
    """A part's content, transfer-decoded, as text (armor is ASCII)."""
    message, _ = full_parse.parse(part)
    payload = message.get_payload(decode=True)
    return payload.decode("ascii", "replace") if isinstance(payload, bytes) else ""


def _literal_bytes(message: Any) -> bytes:
    """The exact literal data: pgpy hands text-mode literals back as ``str`` (RFC 9580 5.9)."""
    contents = message.message
    if isinstance(contents, str):
        literal_format = getattr(getattr(message, "_message", None), "format", "u")
        return contents.encode("latin-1" if literal_format == "t" else "utf-8")
    return bytes(contents)


def _outer(head: bytes) -> bytes:
    """The message's own header fields, without those of its (encrypted) entity."""
    return b"".join(f for f in header_fields(head) if not is_content_field(f))
