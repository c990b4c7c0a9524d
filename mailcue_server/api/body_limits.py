"""Limits on the size of an HTTP request body, one table for every route.

Without them, two anonymous 200 MiB logins took the server from 144 MB to
1.2 GB of memory: every body was read whole before any route looked at it.
Now a request whose ``Content-Length`` is over its route's limit is answered
``413`` at once, before one byte of the body is read, and a chunked body is
counted as it arrives and refused as soon as it passes the limit. The answer
closes the connection; ``http_limits`` lets the client read it before the
close (rather than resetting a client that is still sending).

JSON routes take :data:`JSON_LIMIT`. Routes that carry a whole message (or a
certificate chain, or a key block) follow the live message size limit
(``PUT /system/settings`` changes it at once), with room for JSON and base64
encoding; bulk inject and GraphQL (whose ``bulkInjectEmails`` carries many
messages) take a few times that. A request without credentials never needs a
message-sized body (every such route signs in first), so it is held to
:data:`JSON_LIMIT` on every route.

Starlette's own ``max_body_size`` takes fixed numbers only, answers in plain
text and keeps reading the refused body, which is why this is written here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailcue_server.api.errors import error_body

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB
JSON_LIMIT = 1 * MIB


class BodySize(Enum):
    """How large a route's body may be; the multiple of the live message size limit."""

    JSON = 0
    MESSAGE = 2  # one message; JSON escaping and base64 grow it by up to about 2x
    MESSAGES = 4  # several messages in one request


# (method, path) of every route that takes more than a JSON body; all others: JSON.
LIMITS: dict[tuple[str, str], BodySize] = {
    ("POST", "/api/v1/emails/inject"): BodySize.MESSAGE,
    ("POST", "/api/v1/emails/send"): BodySize.MESSAGE,
    ("POST", "/api/v1/emails/send-canaries"): BodySize.MESSAGE,
    ("POST", "/api/v1/emails/bounces/ingest"): BodySize.MESSAGE,
    ("PUT", "/api/v1/system/tls"): BodySize.MESSAGE,
    ("POST", "/api/v1/gpg/keys/import"): BodySize.MESSAGE,
    ("POST", "/api/v1/emails/bulk-inject"): BodySize.MESSAGES,
    ("POST", "/graphql"): BodySize.MESSAGES,
}

_CREDENTIALS = ("authorization", "x-api-key")


def body_limit(method: str, path: str, max_message_size: int, *, signed_in: bool) -> int:
    """The most bytes a request body may have on this route, now."""
    size = LIMITS.get((method, path.rstrip("/") or "/"), BodySize.JSON)
    if size is BodySize.JSON or not signed_in:
        return JSON_LIMIT
    return max(JSON_LIMIT, int(size.value) * max_message_size)


def _describe(limit: int) -> str:
    if limit % MIB == 0:
        return f"{limit // MIB} MiB"
    return f"{limit} bytes"


class _BodyRefused(Exception):
    """Raised into the app once its body passed the limit and the 413 is sent."""


class BodyLimitMiddleware:
    """Answers ``413 Content Too Large`` for a body over its route's limit (see the module)."""

    def __init__(self, app: ASGIApp, max_message_size: Callable[[], int]) -> None:
        self.app = app
        self.max_message_size = max_message_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        signed_in = any(name in headers for name in _CREDENTIALS)
        limit = body_limit(
            scope["method"], scope["path"], self.max_message_size(), signed_in=signed_in
        )
        declared = headers.get("content-length", "")
        if declared.isdecimal() and int(declared) > limit:
            await _refuse(scope, send, limit, signed_in)  # without reading a byte of it
            return
        await _Limited(self.app, scope, limit, signed_in, receive, send).run()


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


async def _refuse(scope: Scope, send: Send, limit: int, signed_in: bool) -> None:
    """Answer 413 in the error shape of every other answer, and close the connection."""
    detail = f"Request body larger than {_describe(limit)}"
    if not signed_in and limit == JSON_LIMIT:
        detail += " (the limit of a request without credentials)"
    response = JSONResponse(
        error_body(detail),
        status_code=413,
        headers={"Connection": "close"},  # the rest of the body is not read
    )
    await response(scope, _no_body, send)


class _Limited:
    """One request whose body is counted as the app reads it."""

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        limit: int,
        signed_in: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        self.app = app
        self.scope = scope
        self.limit = limit
        self.signed_in = signed_in
        self.receive = receive
        self.send = send
        self.received = 0
        self.started = False
        self.refused = False

    async def run(self) -> None:
        scope = self.scope
        try:
            await self.app(scope, self.counted_receive, self.guarded_send)
        except Exception:
            if not self.refused:
                raise
            # The app failed reading the refused body; the 413 is its answer.
            log.debug("request body refused on %s %s", scope["method"], scope["path"])

    async def counted_receive(self) -> Message:
        if self.refused:
            raise _BodyRefused
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.refused = True
                if not self.started:
                    self.started = True
                    await _refuse(self.scope, self.send, self.limit, self.signed_in)
                raise _BodyRefused
        return message

    async def guarded_send(self, message: Message) -> None:
        if self.refused:
            return  # the 413 was the answer; what the app says after it is dropped
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)
