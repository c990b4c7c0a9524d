"""The local certificate authority and the server certificate it issues.

Pure: makes keys and certificates in memory and judges whether existing ones
are still fit for use. :mod:`.manager` reads and writes the files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailcue_server import errors
from mailcue_server.workers.tls.chain import keys_match

# EC P-256 rather than RSA 2048: a key takes microseconds instead of ~100 ms to
# make (first start, every test), handshakes are cheaper, and every TLS 1.2+
# client a mail server meets (OpenSSL, Go, Java 8+, .NET, Apple, swaks) speaks ECDSA.
_CURVE = ec.SECP256R1()

CA_LIFETIME = dt.timedelta(days=3650)
# Apple clients reject TLS server certificates valid for more than 825 days
# (https://support.apple.com/en-us/103769); 397 also meets the public-CA limit.
SERVER_LIFETIME = dt.timedelta(days=397)
# Reissue this long before expiry, so a periodic load() renews in good time.
RENEW_BEFORE = dt.timedelta(days=30)
# Backdated start, so a client whose clock runs slow still accepts a fresh cert.
_CLOCK_SKEW = dt.timedelta(hours=1)
# X.520 caps commonName at 64 characters; longer hostnames live only in the SAN.
_MAX_CN = 64

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_DNS_NAMES = ("localhost",)
LOCAL_IPS: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)


@dataclass(frozen=True)
class Issued:
    """A key and the certificate for it."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def normalize_hostname(hostname: str) -> str:
    """Return ``hostname`` as a certificate should carry it (lower-case A-label).

    Raises:
        errors.ConfigError: Empty or not encodable as a DNS name.
    """
    name = hostname.strip().rstrip(".").lower()
    if not name:
        raise errors.ConfigError("the TLS hostname is empty")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise errors.ConfigError(f"the TLS hostname {hostname!r} is not a valid DNS name") from exc


def subject_alt_names(hostname: str) -> tuple[list[str], list[IPAddress]]:
    """Return the DNS names and IP addresses the local server cert must cover."""
    dns_names: list[str] = []
    ips = list(LOCAL_IPS)
    try:
        ip = ipaddress.ip_address(hostname)
    except ValueError:
        dns_names.append(hostname)
    else:
        if ip not in ips:
            ips.append(ip)
    dns_names += [name for name in LOCAL_DNS_NAMES if name not in dns_names]
    return dns_names, ips


def issue_ca(now: dt.datetime) -> Issued:
    """Create a new self-signed CA that may only sign end-entity certificates."""
    key = ec.generate_private_key(_CURVE)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MailCue"),
            # Random suffix: two installs' CAs stay distinct in one trust store.
            x509.NameAttribute(NameOID.COMMON_NAME, f"MailCue local CA {secrets.token_hex(4)}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        # Python 3.13+ clients verify with VERIFY_X509_STRICT, which wants an AKI.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(key=key, cert=cert)


def issue_server(ca: Issued, hostname: str, now: dt.datetime) -> Issued:
    """Create a server certificate for ``hostname`` and loopback, signed by ``ca``."""
    key = ec.generate_private_key(_CURVE)
    dns_names, ips = subject_alt_names(hostname)
    common_name = hostname if len(hostname) <= _MAX_CN else "localhost"
    san: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    san += [x509.IPAddress(ip) for ip in ips]
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        # Never outlive the issuer: clients would reject the tail end anyway.
        .not_valid_after(min(now + SERVER_LIFETIME, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key=key, cert=cert)


def ca_is_fit(ca: Issued, now: dt.datetime) -> bool:
    """Tell whether a stored CA can keep signing (its key, CA flag, and dates)."""
    try:
        constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.ca and keys_match(ca.key, ca.cert) and _in_date(ca.cert, now)


def server_is_fit(
    server: Issued, ca_cert: x509.Certificate, hostname: str, now: dt.datetime
) -> bool:
    """Tell whether a stored server cert still fits this CA, hostname and date."""
    cert = server.cert
    if not keys_match(server.key, cert) or not _in_date(cert, now):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return False
    dns_names, ips = subject_alt_names(hostname)
    return set(san.get_values_for_type(x509.DNSName)) == set(dns_names) and set(
        san.get_values_for_type(x509.IPAddress)
    ) == set(ips)


def _in_date(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc - RENEW_BEFORE


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    # ECDSA signs the handshake, so digitalSignature; no keyEncipherment (RSA-only).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
