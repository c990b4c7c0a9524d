"""Request bodies over their route's limit get 413 before the server reads them.

The attack this answers: anonymous 200 MiB logins that the server read whole
(two took it from 144 MB to 1.2 GB). Raw sockets play the attacker, so the
tests see when the answer comes and how much the client got to send.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from dataclasses import dataclass

import httpx
import pytest

from accounts import admin, graphql, new_mailbox
from mailcue_server.app import MailcueServer

LOGIN = "/api/v1/auth/login"
INJECT = "/api/v1/emails/inject"
MIB = 1024 * 1024
ATTACK = 200 * MIB
ANSWER_WITHIN = 10.0


@dataclass
class Exchange:
    answer: bytes
    sent: int  # body bytes the client got to send before the server answered
    reset: bool = False  # the connection ended in a reset rather than a clean close

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        head = self.answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head)}

    @property
    def body(self) -> bytes:
        return self.answer.partition(b"\r\n\r\n")[2]


def _read_all(sock: socket.socket) -> tuple[bytes, bool]:
    answer = b""
    sock.settimeout(ANSWER_WITHIN)
    try:
        while data := sock.recv(65536):
            answer += data
    except ConnectionResetError:
        return answer, True
    return answer, False


def push_body(port: int, head: bytes, chunks: int, chunk: bytes, *, chunked: bool) -> Exchange:
    """Send ``head``, then up to ``chunks`` copies of ``chunk`` for as long as the server
    has not answered; then read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(head)
        sent = 0
        frame = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk
        for _ in range(chunks):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server has answered (or closed)
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        return _exchange(sock, sent)


def _exchange(sock: socket.socket, sent: int) -> Exchange:
    answer, reset = _read_all(sock)
    return Exchange(answer, sent, reset)


def send_then_read(port: int, data: bytes, pause: float) -> Exchange:
    """Send everything first (as most HTTP clients do), wait a moment, then read."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(data)
        time.sleep(pause)
        return _exchange(sock, len(data))


def post_head(path: str, *, length: int | None, token: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def rss_bytes() -> int:
    """This process's resident memory (the server runs in it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def healthy(server: MailcueServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as fresh:
        assert (await fresh.get("/api/v1/health")).status_code == 200


async def test_a_200_mib_login_is_refused_before_its_body_is_read(
    server: MailcueServer,
) -> None:
    """The head alone earns the 413: the client has sent 64 KiB of the 200 MiB."""
    head = post_head(LOGIN, length=ATTACK)
    started = time.monotonic()

    exchange = await asyncio.to_thread(
        push_body, server.port("http"), head, 1, b"x" * 65536, chunked=False
    )

    assert exchange.status == 413, exchange.answer[:300]
    assert time.monotonic() - started < 5
    assert exchange.headers["content-type"] == "application/json"
    assert exchange.headers["connection"] == "close"
    detail = json.loads(exchange.body)["detail"]
    assert detail.startswith("Request body larger than 1 MiB"), detail
    await healthy(server)


async def test_an_attacker_who_keeps_sending_is_cut_off_and_memory_stays_flat(
    server: MailcueServer,
) -> None:
    """Two clients push 200 MiB each as fast as they can; the server keeps neither."""
    head = post_head(LOGIN, length=ATTACK)
    before = rss_bytes()

    exchanges = await asyncio.gather(
        *(
            asyncio.to_thread(
                push_body, server.port("http"), head, ATTACK // 65536, b"y" * 65536, chunked=False
            )
            for _ in range(2)
        )
    )

    for exchange in exchanges:
        assert exchange.status == 413, exchange.answer[:300]
        assert exchange.sent < 32 * MIB, exchange.sent  # socket buffers, not 200 MiB
    assert rss_bytes() - before < 64 * MIB
    await healthy(server)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    server: MailcueServer,
) -> None:
    """No Content-Length to go by: the count of what arrived decides."""
    head = post_head(LOGIN, length=None)

    exchange = await asyncio.to_thread(
        push_body, server.port("http"), head, ATTACK // 65536, b"z" * 65536, chunked=True
    )

    assert exchange.status == 413, exchange.answer[:300]
    assert exchange.headers["connection"] == "close"
    assert json.loads(exchange.body)["detail"].startswith("Request body larger than 1 MiB")
    assert exchange.sent < 32 * MIB, exchange.sent
    await healthy(server)


async def test_a_client_still_sending_reads_the_413_and_a_clean_close(
    server: MailcueServer,
) -> None:
    """Closing with the refused body unread would reset the connection, and a client's
    TCP stack may then drop the 413 before the client reads it; the server lingers."""
    data = post_head(LOGIN, length=4 * MIB) + b"w" * (512 * 1024)

    exchange = await asyncio.to_thread(send_then_read, server.port("http"), data, 0.3)

    assert exchange.status == 413, exchange.answer[:300]
    assert not exchange.reset


async def test_json_routes_take_1_mib_even_signed_in(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    padding = "p" * (MIB + 1)
    response = await http.post(
        "/api/v1/auth/api-keys", headers=boss.headers, json={"name": padding}
    )
    assert response.status_code == 413, response.text[:300]
    assert response.json() == {"detail": "Request body larger than 1 MiB"}

    # Just under the limit is read and judged on its content.
    response = await http.post(
        "/api/v1/auth/api-keys", headers=boss.headers, json={"name": "p" * (MIB - 100)}
    )
    assert response.status_code in (400, 422), response.text[:300]


async def test_a_large_allowed_message_is_injected_whole(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """10 MiB of text (under the 25 MiB message limit) goes in and comes back out."""
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    text = ("0123456789abcdef" * 4 + "\r\n") * (10 * MIB // 66)

    response = await http.post(
        INJECT,
        headers=boss.headers,
        json={
            "mailbox": address,
            "from_address": "big@example.test",
            "to_addresses": [address],
            "subject": "ten mebibytes",
            "text_body": text,
        },
        timeout=60,
    )

    assert response.status_code == 201, response.text[:300]
    raw = await http.get(
        f"/api/v1/emails/{response.json()['uid']}/raw",
        params={"mailbox": address},
        headers=boss.headers,
        timeout=60,
    )
    assert raw.status_code == 200
    assert len(raw.content) > 10 * MIB


async def test_message_routes_follow_the_live_message_size_limit(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """Inject takes twice the message size limit (room for JSON); PUT /system/settings moves it."""
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    settings = "/api/v1/system/settings"
    before = (await http.get(settings, headers=boss.headers)).json()["max_message_size"]
    body = {
        "mailbox": address,
        "from_address": "big@example.test",
        "to_addresses": [address],
        "subject": "three mebibytes",
        "text_body": "q" * (3 * MIB),
    }
    try:
        assert (await http.post(INJECT, headers=boss.headers, json=body)).status_code == 201
        changed = await http.put(settings, headers=boss.headers, json={"max_message_size": MIB})
        assert changed.status_code == 200, changed.text

        refused = await http.post(INJECT, headers=boss.headers, json=body)

        assert refused.status_code == 413, refused.text[:300]
        assert refused.json() == {"detail": "Request body larger than 2 MiB"}
        # The head alone: 60 MiB announced, refused at once.
        exchange = await asyncio.to_thread(
            push_body,
            server.port("http"),
            post_head(INJECT, length=60 * MIB, token=boss.access_token),
            1,
            b"{",
            chunked=False,
        )
        assert exchange.status == 413
    finally:
        restored = await http.put(
            settings, headers=boss.headers, json={"max_message_size": before}
        )
        assert restored.status_code == 200


async def test_without_credentials_a_message_route_takes_only_1_mib(
    server: MailcueServer,
) -> None:
    head = post_head(INJECT, length=5 * MIB)
    exchange = await asyncio.to_thread(
        push_body, server.port("http"), head, 1, b"{", chunked=False
    )
    assert exchange.status == 413
    assert json.loads(exchange.body) == {
        "detail": "Request body larger than 1 MiB (the limit of a request without credentials)"
    }


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "admin"])
async def test_graphql_bodies_are_limited_too(
    server: MailcueServer, http: httpx.AsyncClient, signed_in: bool
) -> None:
    """A 2 MiB injectEmail: too large without credentials, a message like any other with."""
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    document = """
      mutation Inject($input: InjectEmailInput!) {
        injectEmail(input: $input) {
          __typename ... on Injected { uid } ... on OperationError { message }
        }
      }
    """
    variables = {
        "input": {
            "mailbox": address,
            "fromAddress": "big@example.test",
            "toAddresses": [address],
            "subject": "two mebibytes",
            "textBody": "g" * (2 * MIB),
        }
    }
    headers = boss.headers if signed_in else {}

    response = await http.post(
        "/graphql", headers=headers, json={"query": document, "variables": variables}
    )

    if not signed_in:
        assert response.status_code == 413, response.text[:300]
        return
    assert response.status_code == 200, response.text[:300]
    assert response.json()["data"]["injectEmail"]["__typename"] == "Injected", response.text[:300]
    # And a small document still works on the same server.
    assert (await graphql(http, boss, "{ health { status } }"))["data"]["health"]["status"]
