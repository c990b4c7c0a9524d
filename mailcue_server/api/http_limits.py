"""Limits on the size of an HTTP request's head, enforced while uvicorn parses it.

uvicorn's httptools protocol takes request lines and headers of any size:
a 200 KB header reached the app and got 200, and httptools buffers a header
line in memory until it ends. An ASGI middleware only sees the headers once
they are all parsed, so the limits live in the protocol instead:

- at most :data:`MAX_LINE_BYTES` for the request target (``414 URI Too Long``)
  and for each header line (``431 Request Header Fields Too Large``);
- at most :data:`MAX_HEAD_BYTES` for all header lines together (431).

The refusal is a short text answer, then the connection closes; other
connections are served as before. Bytes the client still sends after the
answer are read and dropped for a moment before the close (a "lingering
close"), so its TCP stack does not reset the connection before the client
has read the 431.

The same lingering close ends a connection whose answer came before its
request body did: ``body_limits`` answers 413 to a body over its limit
without reading it, and a client still sending that body must still read
the 413.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mailcue_server.api.security_headers import EDGE_HEADERS

MAX_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = 64 * 1024
# What an unfinished head may buffer before the exact per-header count can see it.
_MAX_BUFFERED = MAX_HEAD_BYTES + MAX_LINE_BYTES
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


class _HeadTooLarge(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _target_too_long() -> _HeadTooLarge:
    return _HeadTooLarge(
        HTTPStatus.REQUEST_URI_TOO_LONG, f"Request target longer than {MAX_LINE_BYTES} bytes\n"
    )


def _line_too_long() -> _HeadTooLarge:
    return _HeadTooLarge(
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        f"Request header line longer than {MAX_LINE_BYTES} bytes\n",
    )


def _head_too_large() -> _HeadTooLarge:
    return _HeadTooLarge(
        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        f"Request headers larger than {MAX_HEAD_BYTES} bytes in all\n",
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request-head limits (pass it as ``http=``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._header_bytes = 0  # exact: the header lines parsed so far
        self._buffered = 0  # rough: bytes fed since the head began (httptools buffers them)
        self._refused = False
        self._dropped = 0
        self._linger: asyncio.TimerHandle | None = None

    # httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_bytes = 0
        self._buffered = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_LINE_BYTES:
            raise _target_too_long()

    def on_header(self, name: bytes, value: bytes) -> None:
        line = len(name) + 2 + len(value)  # "name: value", as sent (less surrounding spaces)
        if line > MAX_LINE_BYTES:
            raise _line_too_long()
        self._header_bytes += line + 2  # and its CRLF
        if self._header_bytes > MAX_HEAD_BYTES:
            raise _head_too_large()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        if self.cycle is not None and not self.cycle.response_started:
            # What the request/response cycle closes after its answer goes through us.
            self.cycle.transport = cast(asyncio.Transport, _CycleTransport(self))

    # asyncio.Protocol ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drop(len(data))
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadTooLarge):
                self._refuse(cause)
            else:
                self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head:
            self._buffered += len(data)
            if self._buffered > _MAX_BUFFERED:
                self._refuse(_head_too_large())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    # refusing -----------------------------------------------------------------------------

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _refuse(self, reason: _HeadTooLarge) -> None:
        """Answer ``reason`` and close, reading (and dropping) what the client still sends."""
        self._refused = True
        body = reason.text.encode("ascii")
        head = [f"HTTP/1.1 {reason.status.value} {reason.status.phrase}\r\n".encode("ascii")]
        defaults = self.server_state.default_headers  # Date and Server, as uvicorn sends
        head += [name + b": " + value + b"\r\n" for name, value in defaults]
        head += [f"{name}: {value}\r\n".encode("ascii") for name, value in EDGE_HEADERS.items()]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._linger_close()

    def close_after_answer(self) -> None:
        """Close once the answer is out; linger if the request body is still arriving."""
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            self.transport.close()
            return
        self._refused = True  # what the client still sends is dropped, not parsed
        self.flow.resume_reading()  # reading may be paused with the body half read
        self._linger_close()

    def _linger_close(self) -> None:
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer ends here; the client may still send
            self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _drop(self, size: int) -> None:
        self._dropped += size
        if self._dropped > LINGER_BYTES:
            self.transport.close()


class _CycleTransport:
    """The transport as a request/response cycle sees it: closing goes through the protocol.

    uvicorn's cycle closes the transport itself right after an answer with
    ``Connection: close``; with unread bytes in the socket that close becomes
    a reset, and the client may lose the answer it was about to read.
    """

    def __init__(self, protocol: BoundedHttpToolsProtocol) -> None:
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        self._protocol.transport.write(data)

    def is_closing(self) -> bool:
        return self._protocol.transport.is_closing()

    def close(self) -> None:
        self._protocol.close_after_answer()
