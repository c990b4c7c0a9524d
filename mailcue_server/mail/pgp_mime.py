"""Building RFC 3156 PGP/MIME from a finished message: sign, encrypt, or both.

A message is split into its *outer* header fields (From, To, Subject, ...)
and its *entity*: the ``Content-*`` fields and the body, which is what
RFC 3156 protects. Signing wraps the entity in ``multipart/signed`` with a
detached signature over its exact bytes in canonical form (CRLF line ends,
RFC 3156 section 5); encrypting wraps it in ``multipart/encrypted`` (section
4); both sign first and encrypt the signed entity (section 6.1). The outer
fields are kept as they are, in order.

The byte helpers here (canonical form, entity split, body part split) are
also what the reader in :mod:`.pgp` uses, so both sides cut parts the same
way: a part is everything between the CRLF ending its delimiter line and the
CRLF that starts the next delimiter (RFC 2046 section 5.1.1).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from email.message import Message

from mailcue_server.mail import full_parse
from mailcue_server.mail.header_block import split_head
from mailcue_server.mail.pgp_keys import (
    HashAlgorithm,
    PGPKey,
    SymmetricKeyAlgorithm,
    pgpy,
    quiet_pgpy,
)

SIGNED_PREAMBLE = b"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
ENCRYPTED_PREAMBLE = b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")
_FIELD_START = re.compile(rb"^[^ \t\r\n][^:\r\n]*:", re.MULTILINE)


def canonical(data: bytes) -> bytes:
    """CRLF line ends (RFC 3156 section 5: what is signed is the canonical form)."""
    return _BARE_LF.sub(b"\r\n", data)


def header_fields(head: bytes) -> list[bytes]:
    """The fields of a header block, each with its folded lines and line end.

    Anything before the first field (an mbox ``From `` line) is kept as one item.
    """
    starts = [match.start() for match in _FIELD_START.finditer(head)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    ends = [*starts[1:], len(head)]
    return [head[start:end] for start, end in zip(starts, ends, strict=True) if end > start]


def split_head_canonical(data: bytes) -> tuple[bytes, bytes]:
    """``(header block without the empty line, body)`` of canonical bytes."""
    head, body = split_head(data)
    return (head[:-2] if head.endswith(b"\r\n\r\n") else head), body


def is_content_field(field: bytes) -> bool:
    """``Content-*`` fields describe the entity (RFC 2045 section 9); the rest the message."""
    return field[:8].lower() == b"content-"


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """``(outer fields, entity)`` of a message, in canonical form.

    The entity is the ``Content-*`` fields, an empty line and the body; with no
    ``Content-Type`` it gets the RFC 2045 section 5.2 default, stated.
    """
    head, body = split_head_canonical(canonical(raw))
    fields = header_fields(head)
    outer = [field for field in fields if not is_content_field(field)]
    content = [field for field in fields if is_content_field(field)]
    if not any(field[:13].lower() == b"content-type:" for field in content):
        content.insert(0, b"Content-Type: text/plain; charset=us-ascii\r\n")
    return outer, b"".join(content) + b"\r\n" + body


def entity_header(entity: bytes) -> Message:
    """The header fields of an entity (or a whole message), parsed; the body is not read.

    Read with :mod:`.full_parse`'s guards, so a header the stdlib cannot parse stays text.
    """
    head, _ = split_head(entity)
    message, _ = full_parse.parse(head)
    return message


def split_parts(body: bytes, boundary: str) -> list[bytes]:
    """The body parts of a canonical multipart body, byte for byte, without preamble and epilogue.

    Only whole delimiter lines count (``--boundary``, optional transport padding).
    """
    delimiter = re.compile(
        rb"\r\n--" + re.escape(boundary.encode("ascii", "replace")) + rb"(--)?[ \t]*(?:\r\n|$)"
    )
    text = b"\r\n" + body
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(text):
        if start is not None:
            parts.append(text[start : match.start()])
        if match.group(1):
            return parts
        start = match.end()
    return parts  # no close delimiter: the last part is unterminated and left out


def new_boundary(*contents: bytes) -> str:
    """A boundary that occurs in none of ``contents`` (RFC 2046 section 5.1.1)."""
    while True:
        boundary = f"=-mailcue-{secrets.token_hex(12)}"
        if not any(boundary.encode("ascii") in content for content in contents):
            return boundary


def _crlf(text: str) -> bytes:
    return canonical(text.encode("ascii")).rstrip(b"\r\n") + b"\r\n"


def sign_entity(entity: bytes, key: PGPKey) -> bytes:
    """``multipart/signed`` around ``entity`` with a detached signature by ``key`` (section 5).

    The signature is a binary-document signature (RFC 9580 section 5.2.1.1)
    over the exact canonical bytes of ``entity``, which go in unchanged.
    """
    entity = canonical(entity)
    signature = key.sign(entity, hash=HashAlgorithm.SHA256)
    micalg = f"pgp-{signature.hash_algorithm.name.lower()}"
    signature_part = (
        b'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
        b"Content-Description: OpenPGP digital signature\r\n"
        b'Content-Disposition: attachment; filename="signature.asc"\r\n'
        b"\r\n" + _crlf(str(signature))
    )
    boundary = new_boundary(entity, signature_part)
    delimiter = b"--" + boundary.encode("ascii")
    head = (
        f'Content-Type: multipart/signed; micalg="{micalg}";\r\n'
        f' protocol="application/pgp-signature";\r\n boundary="{boundary}"\r\n\r\n'
    ).encode("ascii")
    return b"".join(
        [
            head,
            SIGNED_PREAMBLE,
            delimiter + b"\r\n",
            entity,
            b"\r\n" + delimiter + b"\r\n",
            signature_part,
            b"\r\n" + delimiter + b"--\r\n",
        ]
    )


def encrypt_entity(entity: bytes, keys: Sequence[PGPKey]) -> bytes:
    """``multipart/encrypted`` holding ``entity`` encrypted to every key in ``keys`` (section 4).

    One session key, one public-key-encrypted session key packet per
    recipient (RFC 9580 section 5.1), so each recipient decrypts the same message.
    """
    if not keys:
        raise ValueError("no keys to encrypt to")
    message = pgpy.PGPMessage.new(canonical(entity), format="b")
    cipher = SymmetricKeyAlgorithm.AES256
    session_key = cipher.gen_key()
    for key in keys:
        public = key if key.is_public else key.pubkey
        message = public.encrypt(message, cipher=cipher, sessionkey=session_key)
    del session_key
    ciphertext = (
        b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
        b"Content-Description: OpenPGP encrypted message\r\n"
        b'Content-Disposition: inline; filename="encrypted.asc"\r\n'
        b"\r\n" + _crlf(str(message))
    )
    control = (
        b"Content-Type: application/pgp-encrypted\r\n"
        b"Content-Description: PGP/MIME version identification\r\n"
        b"\r\n"
        b"Version: 1\r\n"
    )
    boundary = new_boundary(ciphertext)
    delimiter = b"--" + boundary.encode("ascii")
    head = (
        f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
        f' boundary="{boundary}"\r\n\r\n'
    ).encode("ascii")
    return b"".join(
        [
            head,
            ENCRYPTED_PREAMBLE,
            delimiter + b"\r\n",
            control,
            b"\r\n" + delimiter + b"\r\n",
            ciphertext,
            b"\r\n" + delimiter + b"--\r\n",
        ]
    )


def protect(
    raw: bytes,
    *,
    signing_key: PGPKey | None = None,
    encryption_keys: Sequence[PGPKey] = (),
) -> bytes:
    """Sign and/or encrypt a whole message; the outer header fields stay as they were.

    Args:
        raw: The message as built (any line ends; the result has CRLF).
        signing_key: The sender's private key, to sign with.
        encryption_keys: Public keys of every recipient (and the sender), to
            encrypt to; empty means no encryption.

    Returns:
        The protected message: signed, encrypted, or signed inside encrypted.
    """
    quiet_pgpy()
    outer, entity = split_message(raw)
    if signing_key is not None:
        entity = sign_entity(entity, signing_key)
    if encryption_keys:
        entity = encrypt_entity(entity, encryption_keys)
    if not any(field[:13].lower() == b"mime-version:" for field in outer):
        outer.append(b"MIME-Version: 1.0\r\n")
    return b"".join(outer) + entity
