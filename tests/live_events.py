"""Receiving live events in tests: an SSE reader, a graphql-transport-ws reader, one scenario.

Both readers run in the background and stamp every event with its arrival
time, so a test can say "this IMAP command's event arrived within 1 s" while
its blocking client runs in a thread. ``every_event_type`` causes each event
type that real protocols can cause today and checks both transports alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import json
import secrets
import smtplib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.typing import Subprotocol

from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import Event, EventType
from mailcue_server.store import mailboxes

LATENCY = 1.0
"""The promise: an event reaches a live stream within a second of the change."""
WAIT = 10.0
"""How long a test waits for an event at all (a slow shared machine must not flake)."""
IMAP_PASSWORD = "imap-password-for-events"
SUBSCRIBE_EVENTS = """
subscription ($mailbox: String, $types: [String!]) {
  events(mailbox: $mailbox, types: $types) { id type mailbox folder uid at data }
}"""


@dataclass
class Received:
    type: str
    mailbox: str
    folder: str | None
    uid: int | None
    id: str
    details: dict[str, Any]
    """The event's details (subject, flags...): SSE sends them flat, GraphQL in ``data``."""
    arrived: float


@dataclass
class Feed:
    """Events as they arrive; ``ended`` resolves to how the stream ended."""

    events: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    ended: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    comments: list[str] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    heartbeats: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    """SSE ``heartbeat`` messages, kept apart so ``events`` holds only what happened."""

    def end(self, why: str) -> None:
        if not self.ended.done():
            self.ended.set_result(why)

    async def expect(
        self, kind: str, mailbox: str | None = None, *, since: float | None = None
    ) -> Received:
        """The next event of ``kind`` (of ``mailbox``); others before it are skipped.

        With ``since``, it must have arrived within :data:`LATENCY` of that time.
        """
        async with asyncio.timeout(WAIT):
            while True:
                got = await self.events.get()
                if got.type == kind and (mailbox is None or got.mailbox == mailbox):
                    break
        if since is not None:
            took = got.arrived - since
            assert took < LATENCY, f"{kind} took {took:.3f} s"
        return got

    async def next(self) -> Received:
        async with asyncio.timeout(WAIT):
            return await self.events.get()

    def pending(self) -> list[Received]:
        found: list[Received] = []
        while not self.events.empty():
            found.append(self.events.get_nowait())
        return found


# --- SSE -------------------------------------------------------------------------------------


@dataclass
class SseBlock:
    event: str = "message"
    data: list[str] = field(default_factory=list)
    id: str | None = None
    comments: list[str] = field(default_factory=list)


def parse_sse_block(lines: list[str]) -> SseBlock:
    block = SseBlock()
    for line in lines:
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            block.comments.append(value)
        elif name == "event":
            block.event = value
        elif name == "data":
            block.data.append(value)
        elif name == "id":
            block.id = value
    return block


async def _read_sse(response: httpx.Response, feed: Feed) -> None:
    lines: list[str] = []
    try:
        async for line in response.aiter_lines():
            if line:
                lines.append(line)
                continue
            block, lines = parse_sse_block(lines), []
            feed.comments += block.comments
            if "subscribed" in block.comments:
                feed.subscribed.set()
            if not block.data:
                continue
            payload = json.loads("\n".join(block.data))
            assert isinstance(payload, dict)
            assert payload["type"] == block.event and payload["id"] == block.id
            queue = feed.heartbeats if block.event == "heartbeat" else feed.events
            queue.put_nowait(
                Received(
                    type=block.event,
                    mailbox=payload.get("mailbox", ""),
                    folder=payload.get("folder"),
                    uid=payload.get("uid"),
                    id=block.id or "",
                    details=payload,
                    arrived=time.monotonic(),
                )
            )
        feed.end("closed")
    except httpx.HTTPError as exc:
        feed.end(f"error: {exc}")


@contextlib.asynccontextmanager
async def sse_stream(
    server: MailcueServer, headers: dict[str, str], **params: str
) -> AsyncIterator[Feed]:
    """An open SSE stream, once the server said it is subscribed."""
    async with sse_stream_at(server.http_url, headers, **params) as feed:
        yield feed


@contextlib.asynccontextmanager
async def sse_stream_at(
    base_url: str, headers: dict[str, str], **params: str
) -> AsyncIterator[Feed]:
    """An open SSE stream of the node at ``base_url``, once it said it is subscribed."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(WAIT, read=None)) as http,
        http.stream("GET", "/api/v1/events/stream", headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        feed = Feed()
        reader = asyncio.create_task(_read_sse(response, feed))
        try:
            async with asyncio.timeout(WAIT):
                await feed.subscribed.wait()
            yield feed
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


# --- GraphQL over graphql-transport-ws ---------------------------------------------------------


def ws_url(server: MailcueServer) -> str:
    return server.http_url.replace("http://", "ws://", 1) + "/graphql"


async def _read_ws(ws: websockets.ClientConnection, feed: Feed, errors: list[Any]) -> None:
    try:
        async for raw in ws:
            message = json.loads(raw)
            kind = message["type"]
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    errors.extend(payload["errors"])
                    continue
                (event,) = payload["data"].values()
                feed.events.put_nowait(
                    Received(
                        type=event["type"],
                        mailbox=event["mailbox"],
                        folder=event["folder"],
                        uid=event["uid"],
                        id=event["id"],
                        details=event["data"],
                        arrived=time.monotonic(),
                    )
                )
            elif kind in ("complete", "error"):
                if kind == "error":
                    errors.extend(message["payload"])
                feed.end(kind)
        feed.end("closed")
    except websockets.ConnectionClosed as exc:
        feed.end(f"closed: {exc}")


@dataclass
class Subscription:
    feed: Feed
    errors: list[Any]
    ws: websockets.ClientConnection


@contextlib.asynccontextmanager
async def graphql_subscription(
    server: MailcueServer,
    headers: dict[str, str],
    query: str = SUBSCRIBE_EVENTS,
    init_payload: dict[str, Any] | None = None,
    **variables: Any,
) -> AsyncIterator[Subscription]:
    """A subscription started over a real WebSocket (not yet known to be live: see probe)."""
    async with websockets.connect(
        ws_url(server),
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=headers,
    ) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if init_payload is not None:
            init["payload"] = init_payload
        await ws.send(json.dumps(init))
        async with asyncio.timeout(WAIT):
            ack = json.loads(await ws.recv())
        assert ack["type"] == "connection_ack", ack
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            )
        )
        feed, errors = Feed(), list[Any]()
        reader = asyncio.create_task(_read_ws(ws, feed, errors))
        try:
            yield Subscription(feed, errors, ws)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def until_live(
    server: MailcueServer, feed: Feed, mailbox: str, kind: EventType = EventType.FOLDER_CHANGED
) -> None:
    """Publish probe events on ``mailbox`` until one arrives: from then on nothing is missed.

    GraphQL has no 'subscribed' message, and sleeping would be a guess. The
    probes go on the bus only (no stored change); ``kind`` must pass the
    subscription's type filter.
    """
    assert server.bus is not None
    async with asyncio.timeout(WAIT):
        while True:
            # The bus gives a published event its own id: the token says which probe came.
            token = secrets.token_hex(8)
            await server.bus.publish(Event(kind, mailbox, "probe", data={"probe": token}))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while True:
                        got = await feed.events.get()
                        if got.details.get("probe") == token:
                            return


# --- causing events through real protocols -------------------------------------------------


def new_address(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}@events.test"


def message(to: str, subject: str) -> bytes:
    return (
        f"From: Sender <sender@example.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{secrets.token_hex(8)}@example.test>\r\n\r\nHello.\r\n"
    ).encode()


async def smtp_send_to_port(port: int, to: str, subject: str) -> bytes:
    """Deliver one message with smtplib (in a thread); returns the bytes sent."""
    raw = message(to, subject)

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
            client.sendmail("sender@example.test", [to], raw)

    await asyncio.to_thread(send)
    return raw


async def smtp_send(server: MailcueServer, to: str, subject: str) -> bytes:
    return await smtp_send_to_port(server.port("smtp"), to, subject)


class Imap:
    """One logged-in imaplib connection, each command run in a thread."""

    def __init__(self, client: imaplib.IMAP4) -> None:
        self.client = client

    @classmethod
    async def login(cls, port: int, address: str, password: str = IMAP_PASSWORD) -> Imap:
        def connect() -> imaplib.IMAP4:
            client = imaplib.IMAP4("127.0.0.1", port, timeout=WAIT)
            client.login(address, password)
            return client

        return cls(await asyncio.to_thread(connect))

    async def run(self, command: Callable[[imaplib.IMAP4], tuple[str, Any]]) -> Any:
        typ, data = await asyncio.to_thread(command, self.client)
        assert typ == "OK", data
        return data

    async def logout(self) -> None:
        await asyncio.to_thread(self.client.logout)


async def every_event_type(server: MailcueServer, feed: Feed) -> None:
    """SMTP and IMAP cause every event type they can; each must arrive within a second."""
    address = new_address("all-types")
    started = time.monotonic()
    await smtp_send(server, address, "first mail")
    created = await feed.expect("mailbox.created", address, since=started)
    assert created.folder is None and created.uid is None
    received = await feed.expect("email.received", address, since=started)
    assert (received.folder, received.uid) == ("INBOX", 1)
    assert received.details["subject"] == "first mail"
    assert received.details["from"] == "sender@example.test"

    await mailboxes.set_password(address, IMAP_PASSWORD)
    imap = await Imap.login(server.port("imap"), address)
    try:
        started = time.monotonic()
        await imap.run(lambda c: c.create("Archive"))
        changed = await feed.expect("folder.changed", address, since=started)
        assert changed.folder == "Archive"

        await imap.run(lambda c: c.select("INBOX"))
        started = time.monotonic()
        await imap.run(lambda c: c.uid("STORE", "1", "+FLAGS", "(\\Flagged)"))
        flagged = await feed.expect("email.flags_changed", address, since=started)
        assert (flagged.folder, flagged.uid) == ("INBOX", 1)
        assert "\\Flagged" in flagged.details["flags"]

        started = time.monotonic()
        await imap.run(lambda c: c.uid("COPY", "1", "Archive"))
        copied = await feed.expect("email.copied", address, since=started)
        assert (copied.folder, copied.uid) == ("Archive", 1)
        assert copied.details["from_folder"] == "INBOX"

        started = time.monotonic()
        await imap.run(lambda c: c.uid("MOVE", "1", "Archive"))
        moved = await feed.expect("email.moved", address, since=started)
        assert (moved.folder, moved.uid) == ("Archive", 2)
        assert (moved.details["from_folder"], moved.details["from_uid"]) == ("INBOX", 1)

        await imap.run(lambda c: c.select("Archive"))
        await imap.run(lambda c: c.uid("STORE", "2", "+FLAGS", "(\\Deleted)"))
        started = time.monotonic()
        await imap.run(lambda c: c.expunge())
        deleted = await feed.expect("email.deleted", address, since=started)
        assert (deleted.folder, deleted.uid) == ("Archive", 2)
    finally:
        await imap.logout()


async def rest_event_types(http: httpx.AsyncClient, headers: dict[str, str], feed: Feed) -> None:
    """The events only the HTTP API causes: inject, send, purge and mailbox deletion."""
    local = f"rest{secrets.token_hex(4)}"
    made = await http.post(
        "/api/v1/mailboxes",
        headers=headers,
        json={"username": local, "password": "rest-events-1", "domain": "example.test"},
    )
    assert made.status_code == 201, made.text
    address = made.json()["address"]
    await feed.expect("mailbox.created", address)
    started = time.monotonic()
    injected = await http.post(
        "/api/v1/emails/inject",
        headers=headers,
        json={"mailbox": address, "from_address": "a@example.org", "to_addresses": [address],
              "subject": "injected"},
    )  # fmt: skip
    assert injected.status_code == 201, injected.text
    received = await feed.expect("email.received", address, since=started)
    assert received.details["source"] == "inject"
    started = time.monotonic()
    sent = await http.post(
        "/api/v1/emails/send",
        headers=headers,
        json={"from_address": address, "to_addresses": ["elsewhere@example.test"],
              "subject": "outgoing", "body": "hi"},
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    announced = await feed.expect("email.sent", address, since=started)
    assert announced.details["subject"] == "outgoing"
    started = time.monotonic()
    purged = await http.post(f"/api/v1/mailboxes/{address}/purge", headers=headers)
    assert purged.status_code == 200
    emptied = await feed.expect("mailbox.purged", address, since=started)
    assert emptied.details["deleted"] == 2  # the injected mail and the Sent copy
    started = time.monotonic()
    assert (await http.delete(f"/api/v1/mailboxes/{address}", headers=headers)).status_code == 204
    await feed.expect("mailbox.deleted", address, since=started)
