"""Certificates made by the tests with ``cryptography``, independent of the code under test.

- :func:`issue`: one certificate, self-signed or signed by an issuer, with
  the SANs and validity window a case needs (expired, not yet valid ...).
- :func:`make_chain`: root CA -> issuing CA -> leaf, as a public CA hands it out.
- :class:`TestCa`: a CA kept in a file, issuing server certificates on demand.
- :func:`self_signed_files`: a throwaway server certificate and key as PEM files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
LOOPBACK = "127.0.0.1"
ROOT_CA = "Test Root CA"
ISSUING_CA = "Test Issuing CA"

PrivateKey = CertificateIssuerPrivateKeyTypes


def new_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key: quick to make, accepted at every OpenSSL security level."""
    return ec.generate_private_key(ec.SECP256R1())


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
    subject: str,
    key: PrivateKey,
    issuer: str | None = None,
    issuer_key: PrivateKey | None = None,
    *,
    ca: bool = False,
    hosts: Sequence[str] = (),
    ips: Sequence[str] = (),
    usages: Sequence[ObjectIdentifier] | None = None,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 90 * DAY,
) -> x509.Certificate:
    """A certificate for ``key``, named ``CN=subject``.

    Args:
        subject: The subject's common name.
        key: The subject's private key (its public half goes in the certificate).
        issuer: The issuer's common name; None makes the certificate self-signed.
        issuer_key: The key that signs; defaults to ``key`` (self-signed).
        ca: The BasicConstraints CA flag.
        hosts: DNS names for the SubjectAlternativeName extension.
        ips: IP addresses for the SubjectAlternativeName extension.
        usages: Extended key usages; None means serverAuth for a non-CA certificate.
        not_before: Start of the validity window.
        not_after: End of the validity window.
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usages is None:
        usages = [] if ca else [ExtendedKeyUsageOID.SERVER_AUTH]
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    """The certificates as one PEM bundle, in the order given."""
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """A PKCS#8 PEM private key, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password is not None:
        encryption = serialization.BestAvailableEncryption(password)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def sha256(der: bytes) -> str:
    """A SHA-256 fingerprint as colon-separated upper-case hex, computed here."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def fingerprint(cert: x509.Certificate) -> str:
    return sha256(cert.public_bytes(serialization.Encoding.DER))


@dataclass
class Chain:
    """Root -> issuing CA -> leaf, with the keys that made them."""

    root: x509.Certificate
    root_key: PrivateKey
    issuing: x509.Certificate
    issuing_key: PrivateKey
    leaf: x509.Certificate
    leaf_key: PrivateKey

    @property
    def chain_pem(self) -> bytes:
        """The whole chain, leaf first, root included."""
        return pem(self.leaf, self.issuing, self.root)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.leaf_key)

    @property
    def sha256(self) -> str:
        """The leaf's fingerprint."""
        return fingerprint(self.leaf)


def make_chain(
    hosts: Sequence[str] = ("localhost",),
    *,
    leaf_key: PrivateKey | None = None,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 90 * DAY,
) -> Chain:
    """A fresh chain whose leaf is ``CN=hosts[0]`` for ``hosts`` and 127.0.0.1.

    The validity window applies to the leaf; both CAs are valid now.
    """
    root_key, issuing_key = new_key(), new_key()
    leaf_key = leaf_key or new_key()
    root = issue(ROOT_CA, root_key, ca=True)
    issuing = issue(ISSUING_CA, issuing_key, ROOT_CA, root_key, ca=True)
    leaf = issue(
        hosts[0],
        leaf_key,
        ISSUING_CA,
        issuing_key,
        hosts=hosts,
        ips=(LOOPBACK,),
        not_before=not_before,
        not_after=not_after,
    )
    return Chain(root, root_key, issuing, issuing_key, leaf, leaf_key)


def write_pair(folder: Path, cert: x509.Certificate, key: PrivateKey) -> tuple[Path, Path]:
    """Write a certificate and its key as PEM files named by the serial; return both paths."""
    stem = folder / f"{cert.serial_number:x}"
    cert_file, key_file = stem.with_suffix(".pem"), stem.with_suffix(".key")
    cert_file.write_bytes(pem(cert))
    key_file.write_bytes(key_pem(key))
    return cert_file, key_file


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context presenting this certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def self_signed_files(
    folder: Path, common_name: str = "localhost", *, ca: bool = False
) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and 127.0.0.1, and its key, as files.

    Clients trust the certificate file itself.
    """
    key = new_key()
    cert = issue(common_name, key, ca=ca, hosts=("localhost",), ips=(LOOPBACK,))
    return write_pair(folder, cert, key)


class TestCa:
    """A CA whose certificate a test can hand to the code under test as trusted."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, directory: Path, name: str = "MailCue Test CA") -> None:
        self.directory = directory
        self.common_name = name
        self.key = new_key()
        self.cert = issue(name, self.key, ca=True)
        self.ca_file = directory / f"{name.replace(' ', '-')}.pem"
        self.ca_file.write_bytes(pem(self.cert))

    def server_context(self, *hosts: str, ips: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A TLS server context with a certificate for these DNS names and IPs."""
        key = new_key()
        subject = hosts[0] if hosts else ips[0]
        cert = issue(subject, key, self.common_name, self.key, hosts=hosts, ips=ips)
        return server_context(*write_pair(self.directory, cert, key))
