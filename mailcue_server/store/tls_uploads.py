"""The uploaded TLS certificate, shared through the database by every node.

``PUT /system/tls`` installs a chain on the node that takes it and saves it
here; the other nodes install it at their next sync. The private key is
sealed with a key derived from the server secret, which every node of one
deployment shares. The row has three states: missing (nothing was ever
shared: a node keeps whatever upload it has on disk), a certificate, or
``None`` (the upload was removed: every node goes back to its local one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailcue_server.store import settings
from mailcue_server.store.credentials import SecretBox

KEY = "tls.uploaded"
_PURPOSE = "tls-upload"
_NEVER_SHARED = object()


@dataclass(frozen=True, slots=True)
class SharedCertificate:
    chain_pem: bytes
    key_pem: bytes
    sha256: str
    uploaded_at: datetime | None


def _box(server_secret: str) -> SecretBox:
    return SecretBox(server_secret, _PURPOSE)


async def save(
    chain_pem: bytes,
    key_pem: bytes,
    sha256: str,
    server_secret: str,
    uploaded_at: datetime | None = None,
) -> None:
    """Share a certificate every node should serve (``sha256``: its leaf's fingerprint)."""
    sealed = _box(server_secret).seal(key_pem.decode("ascii"))
    value = {"chain": chain_pem.decode("ascii"), "key": sealed, "sha256": sha256}
    if uploaded_at is not None:
        value["uploaded_at"] = uploaded_at.isoformat()
    await settings.put(KEY, value)


async def forget() -> None:
    """Every node goes back to its local certificate."""
    await settings.put(KEY, None)


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the nodes should serve: ``shared`` is False while nothing was ever shared;
    then ``sha256`` is the shared leaf's fingerprint, or None after a removal."""

    shared: bool
    sha256: str | None


async def wanted() -> Wanted:
    """What the nodes should serve, without opening the key (cheap: one row)."""
    value = await settings.get(KEY, _NEVER_SHARED)
    if value is _NEVER_SHARED:
        return Wanted(shared=False, sha256=None)
    return Wanted(shared=True, sha256=str(value["sha256"]) if isinstance(value, dict) else None)


async def load(server_secret: str) -> SharedCertificate | None:
    """The shared certificate with its key opened, or None when there is none.

    Raises:
        ValueError: The key was sealed under another server secret.
    """
    value = await settings.get(KEY)
    if not isinstance(value, dict):
        return None
    key = _box(server_secret).open(str(value["key"]))
    return SharedCertificate(
        chain_pem=str(value["chain"]).encode("ascii"),
        key_pem=key.encode("ascii"),
        sha256=str(value["sha256"]),
        uploaded_at=datetime.fromisoformat(value["uploaded_at"])
        if "uploaded_at" in value
        else None,
    )
