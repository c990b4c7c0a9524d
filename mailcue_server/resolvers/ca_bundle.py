"""Checking a CA bundle path before it is saved as ``outbound_ca_file``.

The path is read on every node that delivers mail, so it must be absolute
(each node may start in another directory) and name a readable file of PEM
certificates that OpenSSL accepts. Reading runs off the event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from cryptography import x509

from mailcue_server.errors import Invalid

MAX_BUNDLE_BYTES = 4 * 1024 * 1024  # the Mozilla bundle is ~220 KB
FIELD = "outbound_ca_file"


async def checked_path(value: str) -> str:
    """``value`` trimmed, once it names a loadable PEM bundle; ``""`` (no extra CAs) as is.

    Raises:
        Invalid: Not absolute, missing, unreadable, too large, or no PEM certificate in it.
    """
    path = value.strip()
    if not path:
        return ""
    if "\0" in path or not Path(path).is_absolute():
        raise Invalid(f"{FIELD}: give an absolute path to a PEM file, not '{value}'")
    await asyncio.to_thread(_check, Path(path))
    return path


def _check(path: Path) -> None:
    try:
        if not path.is_file():
            raise Invalid(f"{FIELD}: '{path}' is not a file on this server")
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise Invalid(f"{FIELD}: '{path}' is larger than {MAX_BUNDLE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise Invalid(f"{FIELD}: cannot read '{path}': {exc.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise Invalid(f"{FIELD}: '{path}' holds no PEM certificate")
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise Invalid(f"{FIELD}: OpenSSL cannot load '{path}': {exc.reason}") from None
