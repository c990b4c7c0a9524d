"""DKIM keys, signatures and their verification (RFC 6376, RFC 8463) with dkimpy.

Pure: keys come in and go out as text, DNS comes in as a function, so the
sending path, the inbound checks and the tests can all use it without I/O of
its own. Keys are handled as PEM everywhere in MailCue (PKCS#1 or PKCS#8 for
RSA, PKCS#8 for Ed25519); :func:`sign` converts them to what dkimpy expects
(PKCS#1 for RSA, the base64 32-byte seed for Ed25519).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailcue_server.errors import Invalid

if TYPE_CHECKING:
    import dkim

RSA_BITS = 2048
CANONICALIZATION = (b"relaxed", b"relaxed")

TxtLookup = Callable[[str], bytes | str | None]
"""Returns the TXT record at a DNS name (strings joined), or None if there is none."""


class DkimKeyType(StrEnum):
    """The ``k=`` tag of the key record."""

    RSA = "rsa"
    ED25519 = "ed25519"


_ALGORITHMS = {DkimKeyType.RSA: b"rsa-sha256", DkimKeyType.ED25519: b"ed25519-sha256"}


@dataclass(frozen=True)
class DkimKeyPair:
    key_type: DkimKeyType
    private_key_pem: str
    public_key: str  # the base64 ``p=`` value


def generate_key(key_type: DkimKeyType = DkimKeyType.RSA) -> DkimKeyPair:
    """A new signing key: RSA 2048 (RFC 8301 minimum for signers) or Ed25519 (RFC 8463)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if key_type is DkimKeyType.RSA:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    text = pem.decode("ascii")
    return DkimKeyPair(key_type, text, public_key_of(text)[1])


def _load(private_key_pem: str | bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    data = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"Not a usable PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise Invalid("DKIM keys are RSA or Ed25519")
    return key


def public_key_of(private_key_pem: str | bytes) -> tuple[DkimKeyType, str]:
    """The key type and base64 public key (the DNS ``p=`` value) of a private key.

    RSA publishes the DER SubjectPublicKeyInfo (RFC 6376 section 3.6.1),
    Ed25519 the raw 32-byte key (RFC 8463 section 4.2).
    """
    key = _load(private_key_pem)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DkimKeyType.RSA, base64.b64encode(der).decode("ascii")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return DkimKeyType.ED25519, base64.b64encode(raw).decode("ascii")


def txt_record(key_type: DkimKeyType, public_key: str) -> str:
    """The key record to publish at ``<selector>._domainkey.<domain>``."""
    return f"v=DKIM1; k={key_type}; p={public_key}"


@functools.lru_cache(maxsize=64)
def _dkimpy_key(private_key_pem: str | bytes) -> tuple[DkimKeyType, bytes]:
    """The key in dkimpy's format; cached because every message of a domain uses it."""
    key = _load(private_key_pem)
    if isinstance(key, rsa.RSAPrivateKey):
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return DkimKeyType.RSA, pem
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return DkimKeyType.ED25519, base64.b64encode(seed)


def _line_separator(raw: bytes) -> bytes:
    """CRLF or LF, as the message's first line ends: the signature header must match it."""
    end = raw.find(b"\n")
    return b"\r\n" if end > 0 and raw[end - 1 : end] == b"\r" else b"\n"


def sign(raw: bytes, domain: str, selector: str, private_key_pem: str | bytes) -> bytes:
    """The message with a DKIM-Signature header field prepended.

    relaxed/relaxed canonicalization over the RFC 6376 section 5.4.1 fields
    present in the message (dkimpy's ``DKIM.SHOULD``), From signed once more so
    that no second From can be added. The
    header uses the message's own line ending (STACK-NOTES: rewriting line
    endings after signing breaks the signature).

    Args:
        raw: The message bytes, CRLF or LF.
        domain: The signing domain (``d=``), in ASCII form.
        selector: The selector (``s=``) whose key record is published.
        private_key_pem: An RSA or Ed25519 private key in PEM.

    Raises:
        Invalid: The key is unusable or the message cannot be signed (no From).
    """
    import dkim  # dkimpy and its DNS resolver load with the first signature, not at start-up

    key_type, key = _dkimpy_key(private_key_pem)
    try:
        header = dkim.sign(
            raw,
            selector.encode("ascii"),
            domain.encode("ascii"),
            key,
            canonicalize=CANONICALIZATION,
            signature_algorithm=_ALGORITHMS[key_type],
            linesep=_line_separator(raw),
        )
    except (dkim.DKIMException, UnicodeEncodeError) as exc:
        raise Invalid(f"Cannot DKIM-sign this message: {exc}") from None
    return bytes(header) + raw


class DkimResult(StrEnum):
    """RFC 8601 section 2.7.1 result values."""

    PASS = "pass"  # noqa: S105 - a result name, not a password
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True)
class DkimVerification:
    result: DkimResult
    reason: str
    domain: str | None = None
    selector: str | None = None

    @property
    def passed(self) -> bool:
        return self.result is DkimResult.PASS


def signature_key_name(raw: bytes, index: int = 0) -> str | None:
    """``<s>._domainkey.<d>`` of a signature, so async callers can fetch the key first."""
    import dkim

    verifier = dkim.DKIM(raw)
    try:
        prepared = verifier.verify_headerprep(index)
    except dkim.DKIMException:
        return None
    if not prepared:
        return None
    return f"{verifier.selector.decode()}._domainkey.{verifier.domain.decode()}"


def verify(raw: bytes, lookup: TxtLookup, index: int = 0) -> DkimVerification:
    """Check the ``index``-th DKIM-Signature of a message against its published key.

    Args:
        raw: The message as received.
        lookup: Fetches the key record; raising ``TimeoutError`` or ``OSError``
            means the answer is unknown (``temperror``), not absent.
        index: Which signature, topmost first.
    """
    import dkim

    verifier = dkim.DKIM(raw)
    fetched: dict[str, bytes | None] = {}
    failure: list[str] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            value = lookup(name.decode("ascii").rstrip("."))
        except (TimeoutError, OSError) as exc:
            failure.append(str(exc) or type(exc).__name__)
            raise dkim.DnsTimeoutError(str(exc)) from exc
        record = value.encode("ascii", "replace") if isinstance(value, str) else value
        fetched["record"] = record
        return record

    try:
        ok = verifier.verify(idx=index, dnsfunc=dnsfunc)
    except dkim.DKIMException as exc:
        # dkimpy appends both hashes to "body hash mismatch"; the reason alone is enough.
        return _verdict(verifier, DkimResult.FAIL, str(exc).split(" (got ")[0])
    if ok:
        return _verdict(verifier, DkimResult.PASS, "signature verified")
    if verifier.domain is None:
        return DkimVerification(DkimResult.NONE, "message has no DKIM signature")
    if failure:
        return _verdict(verifier, DkimResult.TEMPERROR, f"key lookup failed: {failure[0]}")
    if fetched.get("record") is None:
        return _verdict(verifier, DkimResult.PERMERROR, "no key record published")
    return _verdict(verifier, DkimResult.FAIL, "signature did not verify")


def _verdict(verifier: dkim.DKIM, result: DkimResult, reason: str) -> DkimVerification:
    domain = verifier.domain.decode("ascii", "replace") if verifier.domain else None
    selector = verifier.selector.decode("ascii", "replace") if verifier.domain else None
    return DkimVerification(result, reason, domain, selector)
