"""HTTP connections: the caps every listener has, and the timeouts uvicorn lacks.

The embedded uvicorn gets the protocol classes built here (``http=`` and
``ws=`` of its config). Compared with uvicorn's own they

- count each connection with the listener's ``ConnectionLimiter`` (the one
  the mail listeners use, ``workers/connections.py``) from accept to close,
  WebSocket upgrades included; a connection over the caps is answered
  ``503 Service Unavailable`` at once, before its request is read, and closed;
- close a new connection that sends nothing for the keep-alive timeout
  (uvicorn arms that timer only after a first response);
- close a connection whose request line and headers are not complete within
  ``header_timeout`` seconds of their first byte, with ``408`` (a slowloris
  client sending a header byte every few seconds would otherwise hold it
  for as long as it likes);
- send the security headers of every answer (``security_headers.py``) on the
  answers no app code writes: 503 and 408 above, uvicorn's 400 to a request
  it cannot parse, and the WebSocket library's refused handshakes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Response

from mailcue_server.api.http_limits import BoundedHttpToolsProtocol
from mailcue_server.api.security_headers import EDGE_HEADERS
from mailcue_server.workers.connections import ConnectionLimiter, Ticket, client_of
from mailcue_server.workers.gate import refuse_plain

__all__ = ["HttpProtocols", "http_protocols"]


def _response(status: str, text: str) -> bytes:
    """A plain-text answer of the listener itself, with the headers every answer has."""
    body = f"{text}\n".encode()
    edge = "".join(f"{name}: {value}\r\n" for name, value in EDGE_HEADERS.items())
    return (
        f"HTTP/1.1 {status}\r\n"
        f"{edge}"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode() + body


TOO_MANY = _response("503 Service Unavailable", "Too many connections")
TOO_SLOW = _response("408 Request Timeout", "Request headers not received in time")


@dataclass(frozen=True, slots=True)
class HttpProtocols:
    """What to pass to ``uvicorn.Config`` as ``http`` and ``ws``."""

    http: type[asyncio.Protocol]
    ws: type[asyncio.Protocol]


def http_protocols(
    limiter: ConnectionLimiter, *, header_timeout: float, parser: str = "httptools"
) -> HttpProtocols:
    """Protocol classes counting connections with ``limiter`` and timing request heads.

    Args:
        limiter: The HTTP listener's caps.
        header_timeout: Seconds from a request's first byte to the end of its headers.
        parser: ``"httptools"`` (uvicorn's default here, with the request-head size limits
            of ``http_limits.py``) or ``"h11"``.
    """

    class GuardedHttpTools(_Guarded, BoundedHttpToolsProtocol):
        _limiter = limiter
        _header_timeout = header_timeout

    class GuardedH11(_Guarded, H11Protocol):  # type: ignore[misc]  # see _Guarded
        _limiter = limiter
        _header_timeout = header_timeout

    http = GuardedH11 if parser == "h11" else GuardedHttpTools
    return HttpProtocols(http=http, ws=_GuardedWebSockets)


if TYPE_CHECKING:  # what _Guarded may call on the uvicorn class it is mixed into
    _UvicornHttp = HttpToolsProtocol
else:
    _UvicornHttp = object


class _Guarded(_UvicornHttp):
    """Mixed in before uvicorn's HttpToolsProtocol or H11Protocol (same attributes)."""

    _limiter: ConnectionLimiter
    _header_timeout: float
    _ticket: Ticket | None = None
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ticket = self._limiter.admit(client_of(transport.get_extra_info("peername")))
        if ticket is None:
            refuse_plain(transport, TOO_MANY, self._limiter.refusal())
            return
        self._ticket = ticket
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer after each response only; a connection that
        # never sends a first byte would stay open for good.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if self._head_timer is None and (before is None or before.response_complete):
            self._head_timer = self.loop.call_later(self._header_timeout, self._head_too_slow)
        super().data_received(data)
        if self.cycle is not before:  # a request's head is complete
            self._stop_head_timer()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._stop_head_timer()
        super().handle_websocket_upgrade(*args)
        # The connection now belongs to the WebSocket protocol, and so does its ticket.
        upgraded = self.transport.get_protocol()
        ticket, self._ticket = self._ticket, None
        if isinstance(upgraded, _GuardedWebSockets) and ticket is not None:
            upgraded.ticket = ticket
        elif ticket is not None:
            ticket.release()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, with our headers (both parsers)."""
        self.transport.write(_response("400 Bad Request", msg))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._ticket is not None:
            self._ticket.release()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return
        transport.write(TOO_SLOW)
        transport.close()


class _GuardedWebSockets(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, holding the ticket of the HTTP connection it took over."""

    ticket: Ticket | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every refused handshake (a missing Sec-WebSocket-Key is 400, a close before
        # accept 403) goes out through the websockets library's send_response.
        self._send_response = self.conn.send_response
        self.conn.send_response = self._send_with_headers  # type: ignore[method-assign]

    def _send_with_headers(self, response: Response) -> None:
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            for name, value in EDGE_HEADERS.items():
                if name not in response.headers:
                    response.headers[name] = value
        self._send_response(response)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            ticket, self.ticket = self.ticket, None
            if ticket is not None:
                ticket.release()
