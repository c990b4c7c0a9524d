"""JWT access tokens, 2FA step tokens and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

ACCESS = "access"
TWO_FACTOR = "2fa"
TWO_FACTOR_MINUTES = 5
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    session_id: UUID


@dataclass(frozen=True)
class TwoFactorClaims:
    """A 2FA step token: whose login it continues, its single-use id, when it expires."""

    user_id: UUID
    jti: str
    expires_at: datetime


class TokenService:
    """Signs and checks tokens with a key derived from the server secret."""

    def __init__(self, secret_key: str, access_minutes: int) -> None:
        # Derived, so a short configured secret still gives a 256-bit HMAC key.
        self._key = hashlib.sha256(b"mailcue-jwt:" + secret_key.encode("utf-8")).digest()
        self.access_minutes = access_minutes

    def access_token(self, user_id: UUID, session_id: UUID, now: datetime) -> str:
        return self._encode(
            {"sub": str(user_id), "sid": str(session_id), "typ": ACCESS},
            now,
            timedelta(minutes=self.access_minutes),
        )

    def two_factor_token(self, user_id: UUID, now: datetime) -> str:
        return self._encode(
            {"sub": str(user_id), "typ": TWO_FACTOR}, now, timedelta(minutes=TWO_FACTOR_MINUTES)
        )

    def read_access(self, token: str) -> AccessClaims | None:
        claims = self._decode(token, ACCESS)
        if claims is None or "sid" not in claims:
            return None
        try:
            return AccessClaims(UUID(claims["sub"]), UUID(claims["sid"]))
        except (ValueError, TypeError):
            return None

    def read_two_factor(self, token: str) -> TwoFactorClaims | None:
        """The step token's claims, or None if it is forged, expired or not a step token.

        Whether it was already spent is the store's to say (``store.two_factor``).
        """
        claims = self._decode(token, TWO_FACTOR)
        if claims is None or not isinstance(claims.get("jti"), str):
            return None
        try:
            return TwoFactorClaims(
                UUID(claims["sub"]), claims["jti"], datetime.fromtimestamp(claims["exp"], UTC)
            )
        except (ValueError, TypeError, OverflowError):
            return None

    @staticmethod
    def new_refresh_token() -> str:
        return secrets.token_urlsafe(48)

    def _encode(self, claims: dict[str, Any], now: datetime, ttl: timedelta) -> str:
        import jwt  # PyJWT loads cryptography's X.509 stack; start-up needs none of it

        payload = {**claims, "iat": now, "exp": now + ttl, "jti": secrets.token_hex(16)}
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM)

    def _decode(self, token: str, kind: str) -> dict[str, Any] | None:
        import jwt

        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError:
            return None
        return claims if claims.get("typ") == kind else None
