"""Oversized request heads get 414/431 and a closed connection; the server keeps serving."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from mailcue_server.app import MailcueServer

HEALTH = "/api/v1/health"


def raw_exchange(port: int, chunks: list[bytes]) -> bytes:
    """Send ``chunks`` on a fresh connection (stopping if the server stops reading), then read
    until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while data := sock.recv(65536):
            answer += data
        return answer


async def healthy(http: httpx.AsyncClient) -> None:
    """A normal request, on a new connection, still works."""
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=10) as fresh:
        response = await fresh.get(HEALTH)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({"X-Big": "a" * 200_000}, "Request headers larger than 65536 bytes in all"),
        ({"X-Line": "b" * 8_200}, "Request header line longer than 8192 bytes"),
        ({f"X-Many-{n}": "c" * 4_000 for n in range(20)}, "larger than 65536 bytes in all"),
    ],
    ids=["200KB-line", "just-over-8KB-line", "80KB-of-4KB-lines"],
)
async def test_oversized_headers_get_431_and_the_server_keeps_serving(
    server: MailcueServer, http: httpx.AsyncClient, headers: dict[str, str], text: str
) -> None:
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=10) as client:
        response = await client.get(HEALTH, headers=headers)

    assert response.status_code == 431, response.text[:200]
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["connection"] == "close"
    assert text in response.text
    await healthy(http)


async def test_headers_within_the_limits_are_served(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    # Seven lines of just under 8 KB: 56 KB in all.
    headers = {f"X-Fits-{n}": "d" * 8_000 for n in range(7)}
    response = await http.get(HEALTH, headers=headers)
    assert response.status_code == 200, response.text


async def test_a_request_target_over_8_kb_gets_414(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    response = await http.get(HEALTH, params={"q": "e" * 9_000})
    assert response.status_code == 414, response.text
    assert "Request target longer than 8192 bytes" in response.text
    await healthy(http)


async def test_a_header_line_that_never_ends_is_refused_without_waiting_for_it(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """1 MB of one header line, never finished: refused once the buffered head is too large."""
    start = b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\nX-Endless: "
    chunks = [start] + [b"f" * 16_384] * 64

    answer = await asyncio.to_thread(raw_exchange, server.port("http"), chunks)

    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:300]
    assert rest.endswith(b"Request headers larger than 65536 bytes in all\n")
    await healthy(http)


async def test_a_normal_request_on_the_same_connection_still_works(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """Keep-alive: two ordinary requests on one connection, the limits reset for each."""
    first = await http.get(HEALTH, headers={f"X-A-{n}": "g" * 7_000 for n in range(8)})
    second = await http.get(HEALTH, headers={f"X-B-{n}": "h" * 7_000 for n in range(8)})
    assert (first.status_code, second.status_code) == (200, 200)
