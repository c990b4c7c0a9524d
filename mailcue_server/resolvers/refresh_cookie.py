"""The browser's refresh token: an HttpOnly cookie, and when a request may spend it.

A browser keeps its access token in memory and its refresh token in a cookie
that scripts cannot read (HttpOnly), that no other site's page sends
(SameSite=Strict) and that only the refresh route receives (its Path). A
refresh that takes its token from the cookie must also carry
:data:`REFRESH_HEADER`: a cross-site HTML form cannot set a header, and a
cross-site script needs a CORS preflight this server never grants, so
neither can make a browser spend its cookie. A token in the request body
works without the header, as it always did for API clients.

REST (``rest_compat/auth.py``) and GraphQL (``schema/auth.py``) both set and
clear the cookie from :func:`cookie_for` and :data:`CLEARED`, and both take
the token to spend from :func:`token_to_spend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from mailcue_server.errors import Unauthenticated
from mailcue_server.resolvers.context import Context

REFRESH_COOKIE = "refresh_token"
REFRESH_PATH = "/api/v1/auth/refresh"
"""The only route the browser sends the cookie to."""
REFRESH_HEADER = "X-MailCue-Refresh"
REFRESH_HEADER_VALUE = "1"
MISSING_HEADER = (
    f"A refresh with the cookie needs the header {REFRESH_HEADER}: {REFRESH_HEADER_VALUE}"
)


class CookieSetter(Protocol):
    """What a response offers to set a cookie (Starlette's ``Response`` has it)."""

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        *,
        path: str | None = "/",
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RefreshCookie:
    """What a response's Set-Cookie says; an empty value with ``max_age`` 0 clears it."""

    value: str
    max_age: int
    secure: bool
    name: str = REFRESH_COOKIE
    path: str = REFRESH_PATH
    httponly: bool = True
    samesite: Literal["strict"] = "strict"

    def set_on(self, response: CookieSetter) -> None:
        """Add this Set-Cookie to ``response``."""
        response.set_cookie(
            self.name,
            self.value,
            max_age=self.max_age,
            path=self.path,
            secure=self.secure,
            httponly=self.httponly,
            samesite=self.samesite,
        )


def cookie_for(ctx: Context, refresh_token: str, *, https: bool) -> RefreshCookie:
    """The cookie carrying a newly issued refresh token.

    Args:
        ctx: The call's context (the token lifetime is a setting).
        refresh_token: The token just issued.
        https: Whether the request came over HTTPS (as a trusted proxy reports it);
            the cookie is then ``Secure``, as it always is in production.
    """
    return RefreshCookie(
        value=refresh_token,
        max_age=ctx.settings.refresh_token_expire_days * 86400,
        secure=https or ctx.settings.is_production,
    )


def cleared(*, https: bool) -> RefreshCookie:
    """The Set-Cookie that makes the browser forget the refresh cookie (logout)."""
    return RefreshCookie(value="", max_age=0, secure=https)


def token_to_spend(body: str | None, cookie: str | None, header: str | None) -> str | None:
    """The refresh token a request offers: the body's, else the cookie's if the header is set.

    Raises:
        Unauthenticated: Only the cookie offers a token and the request lacks the header
            (the token is not spent, so a forged request cannot burn it either).
    """
    if body:
        return body
    if not cookie:
        return None
    if (header or "").strip() != REFRESH_HEADER_VALUE:
        raise Unauthenticated(MISSING_HEADER)
    return cookie
