"""Reading and checking an uploaded certificate chain, and describing certificates.

Pure: PEM bytes in, parsed values or :class:`~mailcue_server.errors.Invalid`
out. No files and no sockets; :mod:`.manager` owns those.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailcue_server import errors

# Real chains are two to four certificates long; anything far beyond that is a
# mistake (a whole CA bundle pasted in), not a chain.
MAX_CHAIN_LENGTH = 10
# OpenSSL's default security level (2) refuses smaller RSA keys with an opaque
# "ee key too small"; say it plainly instead.
MIN_RSA_BITS = 2048

ServerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertificateInfo:
    """What the APIs show about the certificate the mail listeners present.

    Attributes:
        subject: RFC 4514 form of the leaf's subject.
        issuer: RFC 4514 form of the leaf's issuer.
        common_name: The leaf's subject CN, if it has one.
        san_dns_names: DNS names from subjectAltName.
        san_ip_addresses: IP addresses from subjectAltName, as text.
        not_before: Start of validity (aware, UTC).
        not_after: End of validity (aware, UTC).
        sha256: SHA-256 of the DER leaf, colon-separated upper-case hex.
        is_uploaded: True when an uploaded chain is in use.
        is_self_signed_local: True when the leaf comes from our local CA.
        uploaded_at: When the uploaded chain was installed (aware, UTC), else None.
    """

    subject: str
    issuer: str
    common_name: str | None
    san_dns_names: list[str]
    san_ip_addresses: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    is_uploaded: bool
    is_self_signed_local: bool
    uploaded_at: dt.datetime | None = None


@dataclass(frozen=True)
class UploadedChain:
    """A checked chain (leaf first) with the leaf's private key."""

    certs: tuple[x509.Certificate, ...]
    key: ServerKey

    def to_pem(self) -> bytes:
        """Serialise as one PEM file: the chain, leaf first, then the key.

        One file, so replacing it swaps certificate and key in a single
        atomic rename and a crash can never pair a new key with an old leaf.
        """
        certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certs)
        return certs + private_key_pem(self.key)


def fingerprint(cert: x509.Certificate) -> str:
    """Return the SHA-256 fingerprint of ``cert`` as ``AB:CD:...``."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    """Return ``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def keys_match(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Tell whether ``key`` is the private half of ``cert``'s public key."""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def describe(
    cert: x509.Certificate, *, is_uploaded: bool, uploaded_at: dt.datetime | None = None
) -> CertificateInfo:
    """Summarise a certificate (the served leaf, or the CA to trust) for the APIs.

    Args:
        cert: The certificate to describe.
        is_uploaded: Whether it came from :func:`parse_upload` rather than the local CA.
        uploaded_at: When the upload was installed, if it was.

    Returns:
        The summary.
    """
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = None
    if common_names:
        value = common_names[0].value
        common_name = value if isinstance(value, str) else value.decode("utf-8", "replace")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns_names: list[str] = []
        ip_addresses: list[str] = []
    else:
        dns_names = san.get_values_for_type(x509.DNSName)
        ip_addresses = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=common_name,
        san_dns_names=dns_names,
        san_ip_addresses=ip_addresses,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=fingerprint(cert),
        is_uploaded=is_uploaded,
        is_self_signed_local=not is_uploaded,
        uploaded_at=uploaded_at if is_uploaded else None,
    )


def read_chain(chain_pem: bytes) -> tuple[x509.Certificate, ...]:
    """Parse PEM certificates, leaf first.

    A certificate that appears twice is kept once, where it first appears:
    operators often paste the issuer both at the end of the chain and as the
    separate CA certificate.

    Raises:
        errors.Invalid: No certificate could be read, or there are too many.
    """
    try:
        certs = tuple(dict.fromkeys(x509.load_pem_x509_certificates(chain_pem)))
    except ValueError as exc:
        raise errors.Invalid(
            "the certificate chain is not valid PEM: expected one or more "
            "'-----BEGIN CERTIFICATE-----' blocks"
        ) from exc
    if len(certs) > MAX_CHAIN_LENGTH:
        raise errors.Invalid(
            f"the certificate chain has {len(certs)} certificates; at most "
            f"{MAX_CHAIN_LENGTH} are accepted"
        )
    for position, cert in enumerate(certs, start=1):
        try:
            _ = cert.extensions  # parsed lazily: surface a malformed one now
        except ValueError as exc:
            raise errors.Invalid(
                f"certificate {position} of the chain has a malformed extension"
            ) from exc
    return certs


def read_key(key_pem: bytes) -> ServerKey:
    """Parse an unencrypted PEM private key usable for a TLS server.

    Raises:
        errors.Invalid: Not PEM, encrypted, or not RSA (>= 2048 bits) / EC.
    """
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:  # cryptography's signal for "needs a password"
        raise errors.Invalid(
            "the private key is encrypted; upload it without a passphrase"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise errors.Invalid(
            "the private key is not valid PEM: expected a '-----BEGIN PRIVATE KEY-----' "
            "(or RSA/EC PRIVATE KEY) block"
        ) from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise errors.Invalid(
                f"the RSA private key has {key.key_size} bits; at least {MIN_RSA_BITS} "
                "are required"
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise errors.Invalid("the private key must be RSA or EC (ECDSA)")


def parse_upload(chain_pem: bytes, key_pem: bytes, now: dt.datetime) -> UploadedChain:
    """Check an uploaded chain and key before anything is persisted.

    Args:
        chain_pem: PEM certificates, the server's own (leaf) first, then each issuer.
        key_pem: The leaf's private key, unencrypted PEM.
        now: The current time (aware).

    Returns:
        The parsed chain and key.

    Raises:
        errors.Invalid: Unparsable PEM, a key that does not match the leaf, a
            certificate outside its validity period, a leaf not meant for TLS
            servers, or a chain whose links do not verify.
    """
    certs = read_chain(chain_pem)
    key = read_key(key_pem)
    leaf = certs[0]
    if not keys_match(key, leaf):
        raise errors.Invalid(
            "the private key does not match the certificate (the server's own "
            "certificate must come first in the chain)"
        )
    for position, cert in enumerate(certs, start=1):
        check_dates(cert, position, now)
    check_server_usage(leaf)
    check_links(certs)
    return UploadedChain(certs=certs, key=key)


def check_dates(cert: x509.Certificate, position: int, now: dt.datetime) -> None:
    """Refuse a certificate outside its validity period; clients would refuse the chain.

    Raises:
        errors.Invalid: ``now`` is before ``notBefore`` or after ``notAfter``.
    """
    which = "the certificate" if position == 1 else f"certificate {position} of the chain"
    if now < cert.not_valid_before_utc:
        raise errors.Invalid(
            f"{which} is not yet valid: its validity starts "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    if now > cert.not_valid_after_utc:
        raise errors.Invalid(
            f"{which} has expired: its validity ended "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
        )


def check_server_usage(leaf: x509.Certificate) -> None:
    """Refuse a leaf whose extended key usage excludes TLS servers (RFC 5280 4.2.1.12).

    Raises:
        errors.Invalid: The leaf lists key purposes, and serverAuth is not one of them.
    """
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction
    allowed = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if not allowed.intersection(usages):
        raise errors.Invalid(
            "the certificate is not for TLS servers: its extended key usage lacks serverAuth"
        )


def check_links(certs: tuple[x509.Certificate, ...]) -> None:
    """Check that each certificate was issued and signed by the next one.

    Raises:
        errors.Invalid: An issuer is not a CA, or a link's names differ, or its
            signature does not verify.
    """
    for position, (child, parent) in enumerate(pairwise(certs), start=1):
        if not _may_issue(parent):
            raise errors.Invalid(
                f"the certificate chain is broken: certificate {position + 1} "
                f"('{parent.subject.rfc4514_string()}') is not a CA certificate"
            )
        if child.issuer != parent.subject:
            raise errors.Invalid(
                f"the certificate chain is broken: certificate {position} was issued by "
                f"'{child.issuer.rfc4514_string()}', but certificate {position + 1} is "
                f"'{parent.subject.rfc4514_string()}'"
            )
        try:
            child.verify_directly_issued_by(parent)
        except InvalidSignature as exc:
            raise errors.Invalid(
                f"the certificate chain is broken: the signature on certificate {position} "
                f"does not verify with the public key of certificate {position + 1}"
            ) from exc
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise errors.Invalid(
                f"the certificate chain cannot be checked: certificate {position} uses a "
                "signature algorithm that is not supported"
            ) from exc


def _may_issue(cert: x509.Certificate) -> bool:
    """Tell whether ``cert`` may sign others: basicConstraints cA, or a v1 self-signed root."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        # X.509 v1 roots predate extensions; OpenSSL still accepts them as anchors.
        return cert.issuer == cert.subject
    return constraints.ca
