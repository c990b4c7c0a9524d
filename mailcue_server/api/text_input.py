"""Text that no database can hold is refused at the door: NUL characters and lone surrogates.

PostgreSQL refuses a NUL character in text, and neither engine can encode
half of a UTF-16 surrogate pair (JSON's ``"\\ud83d"`` alone): such a value in
a lookup or a write was a 500. No address, name or field of ours can hold
either, so a request whose path, query string or JSON body carries one is
answered 400 before any route reads it, the same on every engine.

The JSON body is checked as it arrived, escapes and all, so it is parsed
once, by the route: a ``\\u`` escape counts when an even run of backslashes
(escaped backslashes) stands before it.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailcue_server.api.errors import error_body

_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")
_HIGH = range(0xD800, 0xDC00)
_LOW = range(0xDC00, 0xE000)


def json_text_ok(body: bytes) -> bool:
    """False when a JSON string in ``body`` holds a NUL or an unpaired surrogate."""
    if b"\\u" not in body:
        return True  # the common case: nothing to look at
    high_ends_at = -1  # where the escape of an unpaired high surrogate ends
    for escape in _ESCAPE.finditer(body):
        code = int(escape.group(1), 16)
        start = escape.end() - 6  # the escape itself, after any escaped backslashes
        if high_ends_at >= 0:
            if start != high_ends_at or code not in _LOW:
                return False
            high_ends_at = -1
            continue
        if code == 0 or code in _LOW:
            return False
        if code in _HIGH:
            high_ends_at = escape.end()
    return high_ends_at < 0


def _where(scope: Scope) -> str | None:
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "query string"
    return None


def _is_json(headers: Headers) -> bool:
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


async def _refuse(scope: Scope, send: Send, where: str) -> None:
    detail = f"The {where} holds a NUL character or an unpaired surrogate, which no text may"
    await JSONResponse(error_body(detail), status_code=400)(scope, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


class TextInputMiddleware:
    """Answers 400 to a request carrying text no database can hold (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _where(scope)
        if where is not None:
            await _refuse(scope, send, where)
            return
        if not _is_json(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        # The whole body (the body limit, outside this, bounds it), then the route.
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _disconnected, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not json_text_ok(body):
            await _refuse(scope, send, "JSON body")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for a disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
