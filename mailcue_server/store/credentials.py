"""Password hashing and secret-derived encryption, shared by the APIs and protocol servers.

Argon2id (argon2-cffi) hashes passwords. Hashing runs in a worker thread so a
login never stalls the event loop. ``SecretBox`` encrypts small secrets at rest
(TOTP seeds, later private keys) with a key derived from the server secret.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_hasher = PasswordHasher()  # argon2-cffi defaults to Argon2id (RFC 9106 low-memory profile)


@functools.cache
def _dummy_hash() -> str:
    """A real hash: verifying against it for an unknown user costs what a wrong password does.

    Made on first use, not at import (it takes ~0.1 s, which start-up shouldn't pay).
    """
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    """Argon2id hash of ``password``, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check ``password``; ``stored_hash=None`` (no such user) takes the same time and fails."""
    return await asyncio.to_thread(_verify, stored_hash, password)


def sha256_hex(value: str) -> str:
    """Digest used to store high-entropy tokens (refresh tokens, API keys)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class SecretBox:
    """Authenticated encryption of short secrets under a key derived from the server secret."""

    def __init__(self, server_secret: str, purpose: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"mailcue-secretbox",
            info=purpose.encode("utf-8"),
        ).derive(server_secret.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        """Decrypt; raises ``ValueError`` if the value was not sealed with this key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("sealed value does not match the server secret") from exc
