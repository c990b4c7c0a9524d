"""POP3 server: stdlib ``poplib`` and raw-socket transcripts against a real loopback listener.

The in-memory ``MemoryPop3Backend`` below stands in for the store. Every
retrieved message is compared with the fixture bytes in ``tests/data/pop3``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import os
import poplib
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from certs import self_signed_files, server_context
from mailcue_server.errors import NotFound
from mailcue_server.workers.pop3 import MaildropInUse, MessageRef, Pop3Server
from mailcue_server.workers.pop3.session import After, Pop3Session, State

DATA = Path(__file__).resolve().parent.parent / "data" / "pop3"
NAMES = ["plain.eml", "multipart-attachment.eml", "non-ascii-header.eml", "dot-lines.eml"]
FIXTURES = {name: (DATA / name).read_bytes() for name in NAMES}
MESSAGES = [FIXTURES[name] for name in NAMES]
USER = "alice@example.test"
PASSWORD = "correct horse battery"  # a space, as RFC 1939 section 7 allows in PASS
TIMEOUT = 10.0


# -- in-memory backend ------------------------------------------------------------


class MemoryMaildrop:
    def __init__(self, backend: MemoryPop3Backend, user: str) -> None:
        self._backend = backend
        self._user = user

    async def list_messages(self) -> Sequence[MessageRef]:
        box = self._backend.boxes[self._user]
        return [MessageRef(uid=uid, size=len(raw)) for uid, raw in box.items()]

    async def read(self, uid: str) -> bytes:
        if uid in self._backend.broken_uids:
            raise RuntimeError("database password is hunter2")
        if self._backend.gate is not None:
            self._backend.reading.set()
            await self._backend.gate.wait()
        try:
            return self._backend.boxes[self._user][uid]
        except KeyError:
            raise NotFound("message not found") from None

    async def delete(self, uids: Sequence[str]) -> None:
        self._backend.deleted.append(list(uids))
        for uid in uids:
            del self._backend.boxes[self._user][uid]

    async def release(self) -> None:
        self._backend.locked.discard(self._user)
        self._backend.released.put_nowait(self._user)


class MemoryPop3Backend:
    """Users, maildrops and locks in dicts; records deletes and releases for asserts."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}
        self.boxes: dict[str, dict[str, bytes]] = {}
        self.locked: set[str] = set()
        self.deleted: list[list[str]] = []
        self.released: asyncio.Queue[str] = asyncio.Queue()
        self.broken_uids: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.reading = asyncio.Event()
        self._next_uid = 1

    def add_user(self, user: str, password: str, messages: Sequence[bytes] = ()) -> None:
        self.passwords[user] = password
        self.boxes[user] = {}
        for raw in messages:
            self.deliver(user, raw)

    def deliver(self, user: str, raw: bytes) -> str:
        uid = f"uid-{self._next_uid:04d}"
        self._next_uid += 1
        self.boxes[user][uid] = raw
        return uid

    def uids(self, user: str = USER) -> list[str]:
        return list(self.boxes[user])

    async def authenticate(
        self, username: str, password: str, *, client_ip: str
    ) -> MemoryMaildrop | None:
        stored = self.passwords.get(username)
        # Compare even for unknown users, so both failures cost the same.
        matches = hmac.compare_digest((stored or "\0").encode(), password.encode())
        if stored is None or not matches:
            return None
        if username in self.locked:
            raise MaildropInUse(username)
        self.locked.add(username)
        return MemoryMaildrop(self, username)


# -- fixtures ---------------------------------------------------------------------

Serve = Callable[..., Awaitable[Pop3Server]]


@pytest.fixture
def backend() -> MemoryPop3Backend:
    memory = MemoryPop3Backend()
    memory.add_user(USER, PASSWORD, MESSAGES)
    memory.add_user("bob@example.test", "bob-secret")
    return memory


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Pop3Server] = []

    async def start(backend: MemoryPop3Backend, **options: Any) -> Pop3Server:
        options.setdefault("allow_plaintext_auth", True)
        server = Pop3Server(backend, host="127.0.0.1", port=0, **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and 127.0.0.1, and its key."""
    return self_signed_files(tmp_path_factory.mktemp("tls"), ca=True)


@pytest.fixture
def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return server_context(*tls_files)


@pytest.fixture
def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


# -- raw-socket client --------------------------------------------------------------


class Wire:
    """A scripted POP3 client: send exact bytes, read exact reply lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting = b""

    @classmethod
    async def open(cls, server: Pop3Server, tls: ssl.SSLContext | None = None) -> Wire:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=tls, server_hostname="localhost" if tls else None
        )
        wire = cls(reader, writer)
        wire.greeting = await wire.line()
        assert wire.greeting.startswith(b"+OK ")
        return wire

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, text: str) -> bytes:
        await self.send(text.encode() + b"\r\n")
        return await self.line()

    async def block(self) -> bytes:
        """The body of a multi-line reply, still byte-stuffed, without the terminator."""
        lines = []
        while (line := await self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line reply"
            lines.append(line)
        return b"".join(lines)

    async def login(self, user: str = USER, password: str = PASSWORD) -> bytes:
        assert (await self.command(f"USER {user}")).startswith(b"+OK")
        return await self.command(f"PASS {password}")

    async def closed(self) -> bool:
        """True once the server has closed the connection."""
        try:
            return await asyncio.wait_for(self.reader.read(), TIMEOUT) == b""
        except ConnectionResetError:
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


Connect = Callable[..., Awaitable[Wire]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open raw clients; whatever a test leaves open is closed afterwards."""
    wires: list[Wire] = []

    async def open_wire(server: Pop3Server, tls: ssl.SSLContext | None = None) -> Wire:
        wire = await Wire.open(server, tls)
        wires.append(wire)
        return wire

    yield open_wire
    for wire in wires:
        await wire.close()


def unstuff(block: bytes) -> bytes:
    """Undo RFC 1939 section 3 byte-stuffing of a multi-line body."""
    lines = block.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def plain_auth(authcid: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


def expected_top(raw: bytes, count: int) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = body.split(b"\r\n")[:-1]
    return head + b"\r\n\r\n" + b"".join(line + b"\r\n" for line in lines[:count])


def joined(lines: list[bytes]) -> bytes:
    """poplib's list of lines (CRLF removed, unstuffed) back into message bytes."""
    return b"".join(line + b"\r\n" for line in lines)


# -- poplib -------------------------------------------------------------------------


async def test_poplib_retrieves_every_message_byte_identical(
    backend: MemoryPop3Backend, serve: Serve
) -> None:
    server = await serve(backend)

    def client() -> None:
        pop = poplib.POP3("127.0.0.1", server.port, timeout=TIMEOUT)
        pop.user(USER)
        pop.pass_(PASSWORD)
        assert pop.stat() == (len(MESSAGES), sum(len(raw) for raw in MESSAGES))
        _, listing, _ = pop.list()
        assert listing == [f"{n} {len(raw)}".encode() for n, raw in enumerate(MESSAGES, 1)]
        _, uidl, _ = pop.uidl()
        assert uidl == [f"{n} {uid}".encode() for n, uid in enumerate(backend.uids(), 1)]
        for number, raw in enumerate(MESSAGES, 1):
            response, lines, _ = pop.retr(number)
            assert response == f"+OK {len(raw)} octets".encode()
            assert joined(lines) == raw
        pop.quit()

    await asyncio.to_thread(client)
    assert backend.deleted == []
    assert await backend.released.get() == USER


async def test_poplib_top_sends_header_and_n_body_lines(
    backend: MemoryPop3Backend, serve: Serve
) -> None:
    server = await serve(backend)
    raw = FIXTURES["plain.eml"]

    def client() -> None:
        pop = poplib.POP3("127.0.0.1", server.port, timeout=TIMEOUT)
        pop.user(USER)
        pop.pass_(PASSWORD)
        for count in (0, 1, 3):
            assert joined(pop.top(1, count)[1]) == expected_top(raw, count)
        assert joined(pop.top(1, 1000)[1]) == raw
        assert joined(pop.top(4, 2)[1]) == expected_top(FIXTURES["dot-lines.eml"], 2)
        pop.quit()

    await asyncio.to_thread(client)


async def test_dele_then_quit_deletes_in_update_state(
    backend: MemoryPop3Backend, serve: Serve
) -> None:
    server = await serve(backend)
    first, _, third, _ = backend.uids()

    def client() -> None:
        pop = poplib.POP3("127.0.0.1", server.port, timeout=TIMEOUT)
        pop.user(USER)
        pop.pass_(PASSWORD)
        pop.dele(1)
        pop.dele(3)
        assert pop.stat() == (2, len(MESSAGES[1]) + len(MESSAGES[3]))
        assert pop.quit() == b"+OK Signing off (2 messages left)"

    await asyncio.to_thread(client)
    assert backend.deleted == [[first, third]]
    assert list(backend.boxes[USER].values()) == [MESSAGES[1], MESSAGES[3]]


async def test_dele_then_rset_keeps_messages(backend: MemoryPop3Backend, serve: Serve) -> None:
    server = await serve(backend)

    def client() -> None:
        pop = poplib.POP3("127.0.0.1", server.port, timeout=TIMEOUT)
        pop.user(USER)
        pop.pass_(PASSWORD)
        pop.dele(2)
        pop.rset()
        assert pop.stat()[0] == len(MESSAGES)
        assert joined(pop.retr(2)[1]) == MESSAGES[1]
        pop.quit()

    await asyncio.to_thread(client)
    assert backend.deleted == []
    assert len(backend.boxes[USER]) == len(MESSAGES)


async def test_stls_upgrades_and_then_allows_login(
    backend: MemoryPop3Backend,
    serve: Serve,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    server = await serve(backend, starttls_context=server_tls, allow_plaintext_auth=False)

    def client() -> None:
        pop = poplib.POP3("127.0.0.1", server.port, timeout=TIMEOUT)
        before = pop.capa()
        assert "STLS" in before
        assert "USER" not in before
        assert "SASL" not in before
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\].*STLS"):
            pop.user(USER)
        pop.stls(client_tls)
        after = pop.capa()
        assert "STLS" not in after
        assert "USER" in after
        assert after["SASL"] == ["PLAIN"]
        pop.user(USER)
        pop.pass_(PASSWORD)
        assert joined(pop.retr(2)[1]) == MESSAGES[1]
        pop.quit()

    await asyncio.to_thread(client)


async def test_pop3s_implicit_tls(
    backend: MemoryPop3Backend,
    serve: Serve,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    server = await serve(backend, ssl_context=server_tls, allow_plaintext_auth=False)

    def client() -> None:
        pop = poplib.POP3_SSL("127.0.0.1", server.port, context=client_tls, timeout=TIMEOUT)
        assert "STLS" not in pop.capa()
        pop.user(USER)
        pop.pass_(PASSWORD)
        for number, raw in enumerate(MESSAGES, 1):
            assert joined(pop.retr(number)[1]) == raw
        pop.quit()

    await asyncio.to_thread(client)


async def test_capa_lists_extensions(backend: MemoryPop3Backend, serve: Serve) -> None:
    server = await serve(backend)

    def client() -> dict[str, list[str]]:
        pop = poplib.POP3("127.0.0.1", server.port, timeout=TIMEOUT)
        capabilities = pop.capa()
        pop.quit()
        return capabilities

    capabilities = await asyncio.to_thread(client)
    assert set(capabilities) == {
        "TOP",
        "UIDL",
        "USER",
        "SASL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "IMPLEMENTATION",
    }
    assert capabilities["SASL"] == ["PLAIN"]


# -- raw transcripts ------------------------------------------------------------------


async def test_pipelined_commands_are_answered_in_order(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    uids = backend.uids()
    wire = await connect(await serve(backend))
    await wire.send(
        f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 4\r\n"
        "DELE 4\r\nNOOP\r\nQUIT\r\n".encode()
    )
    assert await wire.line() == b"+OK Send PASS\r\n"
    assert (await wire.line()).startswith(b"+OK Maildrop has 4 messages")
    assert await wire.line() == f"+OK 4 {sum(map(len, MESSAGES))}\r\n".encode()
    assert (await wire.line()).startswith(b"+OK")
    assert await wire.block() == b"".join(
        f"{n} {len(raw)}\r\n".encode() for n, raw in enumerate(MESSAGES, 1)
    )
    assert await wire.line() == f"+OK 2 {uids[1]}\r\n".encode()
    assert await wire.line() == f"+OK {len(MESSAGES[3])} octets\r\n".encode()
    assert unstuff(await wire.block()) == MESSAGES[3]
    assert await wire.line() == b"+OK Message 4 deleted\r\n"
    assert await wire.line() == b"+OK\r\n"
    assert await wire.line() == b"+OK Signing off (3 messages left)\r\n"
    assert await wire.closed()
    assert backend.deleted == [[uids[3]]]


async def test_dot_stuffing_round_trips_byte_identical(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    raw = FIXTURES["dot-lines.eml"]
    wire = await connect(await serve(backend))
    await wire.login()
    assert await wire.command("RETR 4") == f"+OK {len(raw)} octets\r\n".encode()
    block = await wire.block()
    # Every line starting with "." gains one more; the lone "." lines become "..".
    assert b"\r\n..\r\n...\r\n..hidden file name\r\n.... an ellipsis\r\n" in block
    assert block.endswith(b"\r\n..\r\n")
    assert len(block) == len(raw) + sum(line.startswith(b".") for line in raw.split(b"\r\n"))
    assert unstuff(block) == raw
    await wire.close()


async def test_deleted_messages_are_invisible(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend))
    await wire.login()
    assert await wire.command("DELE 2") == b"+OK Message 2 deleted\r\n"
    size = sum(len(raw) for n, raw in enumerate(MESSAGES, 1) if n != 2)
    assert await wire.command("STAT") == f"+OK 3 {size}\r\n".encode()
    assert (await wire.command("LIST")).startswith(b"+OK Maildrop has 3 messages")
    assert b"\r\n2 " not in b"\r\n" + await wire.block()
    assert (await wire.command("UIDL")).startswith(b"+OK")
    assert backend.uids()[1].encode() not in await wire.block()
    for command in ("LIST 2", "UIDL 2", "RETR 2", "TOP 2 0", "DELE 2"):
        assert await wire.command(command) == b"-ERR Message 2 already deleted\r\n"
    assert (
        await wire.command("RSET")
        == f"+OK Maildrop has 4 messages ({size + len(MESSAGES[1])} octets)\r\n".encode()
    )
    assert (await wire.command("LIST 2")) == f"+OK 2 {len(MESSAGES[1])}\r\n".encode()
    await wire.close()


async def test_dropped_connection_deletes_nothing(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend))
    await wire.login()
    assert (await wire.command("DELE 1")).startswith(b"+OK")
    wire.writer.transport.abort()
    assert await asyncio.wait_for(backend.released.get(), TIMEOUT) == USER
    assert backend.deleted == []
    assert len(backend.boxes[USER]) == len(MESSAGES)


async def test_maildrop_is_a_snapshot_taken_at_login(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    server = await serve(backend)
    wire = await connect(server)
    await wire.login()
    backend.deliver(USER, FIXTURES["plain.eml"])
    assert (await wire.command("STAT")).startswith(b"+OK 4 ")
    assert await wire.command("RETR 5") == b"-ERR No such message\r\n"
    assert (await wire.command("QUIT")).startswith(b"+OK")
    again = await connect(server)
    assert (await again.login()).startswith(b"+OK Maildrop has 5 messages")
    await again.close()


async def test_wrong_state_is_refused(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend))
    for command in ("STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL"):
        verb = command.split()[0]
        reply = await wire.command(command)
        assert reply == f"-ERR {verb} is not valid in the authorization state\r\n".encode()
    assert await wire.command("PASS x") == b"-ERR Send USER first\r\n"
    await wire.login()
    for command in ("USER x", "PASS x", "AUTH PLAIN", "STLS"):
        verb = command.split()[0]
        reply = await wire.command(command)
        assert reply == f"-ERR {verb} is not valid in the transaction state\r\n".encode()
    assert await wire.command("NOOP") == b"+OK\r\n"
    await wire.close()


async def test_bad_arguments_and_message_numbers(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend))
    await wire.login()
    replies = {
        "RETR 0": b"-ERR No such message",
        "RETR 5": b"-ERR No such message",
        "LIST 99999999999": b"-ERR Invalid message number",
        "RETR abc": b"-ERR Invalid message number",
        "RETR -1": b"-ERR Invalid message number",
        "RETR \u0661": b"-ERR Invalid message number",  # an Arabic-Indic digit one
        "RETR": b"-ERR Missing argument",
        "RETR 1 2": b"-ERR Too many arguments",
        "TOP 1": b"-ERR Missing argument",
        "TOP 1 x": b"-ERR Invalid line count",
        "TOP 1 -1": b"-ERR Invalid line count",
        "STAT 1": b"-ERR Too many arguments",
        "FROB": b"-ERR Unknown command",
        "APOP alice abc": b"-ERR Unknown command",
        "": b"-ERR Unknown command",
    }
    for command, expected in replies.items():
        assert await wire.command(command) == expected + b"\r\n", command
    await wire.send(b"NOOP \xff\xfe\r\n")
    assert await wire.line() == b"-ERR Command is not valid UTF-8\r\n"
    # Verbs are case-insensitive (RFC 1939 section 3).
    assert (await wire.command("stat")).startswith(b"+OK 4 ")
    await wire.close()


async def test_overlong_line_is_refused_and_skipped(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend, max_line_length=512))
    await wire.send(b"USER " + b"x" * 5000 + b"\r\nNOOP\r\n")
    assert await wire.line() == b"-ERR Line too long\r\n"
    assert await wire.line() == b"-ERR NOOP is not valid in the authorization state\r\n"
    # The same line in two pieces: the tail must not be read as a command.
    await wire.send(b"USER " + b"y" * 3000)
    await wire.send(b"STAT\r\nCAPA\r\n")
    assert await wire.line() == b"-ERR Line too long\r\n"
    assert await wire.line() == b"+OK Capability list follows\r\n"
    await wire.block()
    assert (await wire.command("QUIT")).startswith(b"+OK")
    assert await wire.closed()


# -- authentication -------------------------------------------------------------------


async def test_bad_credentials_get_one_answer(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend))
    unknown_user = await wire.login("nobody@example.test", PASSWORD)
    wrong_password = await wire.login(USER, "wrong")
    assert unknown_user == wrong_password == b"-ERR [AUTH] Invalid credentials\r\n"
    assert (await wire.login()).startswith(b"+OK Maildrop has 4 messages")
    await wire.close()


async def test_too_many_failures_close_the_connection(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend, max_auth_failures=2))
    assert (await wire.login(USER, "wrong")).startswith(b"-ERR [AUTH]")
    assert (await wire.command(f"AUTH PLAIN {plain_auth(USER, 'wrong')}")).startswith(
        b"-ERR [AUTH]"
    )
    assert await wire.closed()


async def test_auth_plain(backend: MemoryPop3Backend, serve: Serve, connect: Connect) -> None:
    server = await serve(backend, max_auth_failures=10)
    # RFC 5034 section 4: initial response on the command line.
    wire = await connect(server)
    reply = await wire.command(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}")
    assert reply.startswith(b"+OK Maildrop has 4 messages")
    assert (await wire.command("QUIT")).startswith(b"+OK")
    # Continuation: an empty "+ " challenge, then the response on its own line.
    wire = await connect(server)
    assert await wire.command("auth plain") == b"+ \r\n"
    assert (await wire.command(plain_auth(USER, PASSWORD, authzid=USER))).startswith(b"+OK")
    assert (await wire.command("QUIT")).startswith(b"+OK")

    wire = await connect(server)
    assert await wire.command("AUTH PLAIN") == b"+ \r\n"
    assert await wire.command("*") == b"-ERR Authentication cancelled\r\n"
    assert await wire.command("AUTH PLAIN") == b"+ \r\n"
    assert await wire.command("not base64!") == b"-ERR Invalid base64 in SASL response\r\n"
    no_nuls = base64.b64encode(b"no-nuls").decode()
    not_utf8 = base64.b64encode(b"\0\xff\0x").decode()
    as_bob = plain_auth(USER, PASSWORD, authzid="bob@example.test")
    malformed = b"-ERR Malformed SASL PLAIN response"
    replies = {
        "AUTH PLAIN %%%%": b"-ERR Invalid base64 in SASL response",
        "AUTH PLAIN YWJj=": b"-ERR Invalid base64 in SASL response",  # bad padding
        "AUTH PLAIN =": malformed,
        f"AUTH PLAIN {no_nuls}": malformed,
        f"AUTH PLAIN {not_utf8}": malformed,
        f"AUTH PLAIN {as_bob}": b"-ERR [AUTH] Acting as another user is not permitted",
        f"AUTH PLAIN {plain_auth(USER, 'wrong')}": b"-ERR [AUTH] Invalid credentials",
        "AUTH CRAM-MD5": b"-ERR Unsupported SASL mechanism",
        "AUTH PLAIN a b": b"-ERR Too many arguments",
    }
    for command, expected in replies.items():
        assert await wire.command(command) == expected + b"\r\n", command
    assert await wire.command("AUTH") == b"+OK Supported mechanisms follow\r\n"
    assert await wire.block() == b"PLAIN\r\n"
    # Still in AUTHORIZATION after all that: USER/PASS works.
    assert (await wire.login()).startswith(b"+OK")
    await wire.close()


async def test_plaintext_auth_refused_without_tls(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend, allow_plaintext_auth=False))
    refusal = b"-ERR [AUTH] Plaintext authentication is disabled here, use STLS\r\n"
    assert await wire.command(f"USER {USER}") == refusal
    assert await wire.command(f"PASS {PASSWORD}") == refusal
    assert await wire.command(f"AUTH PLAIN {plain_auth(USER, PASSWORD)}") == refusal
    assert await wire.command("STLS") == b"-ERR STLS is not available\r\n"
    assert backend.locked == set()
    await wire.close()


async def test_locked_maildrop_answers_in_use(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    server = await serve(backend)
    first = await connect(server)
    await first.login()
    second = await connect(server)
    assert await second.login() == b"-ERR [IN-USE] Maildrop is locked by another session\r\n"
    assert (await first.command("QUIT")).startswith(b"+OK")
    assert (await second.login()).startswith(b"+OK")
    await second.close()


# -- TLS ------------------------------------------------------------------------------


async def test_stls_drops_commands_pipelined_in_the_clear(
    backend: MemoryPop3Backend,
    serve: Serve,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    connect: Connect,
) -> None:
    server = await serve(backend, starttls_context=server_tls)
    wire = await connect(server)
    # A man in the middle appends a command after STLS (CVE-2011-0411).
    await wire.send(f"STLS\r\nUSER {USER}\r\n".encode())
    assert await wire.line() == b"+OK Begin TLS negotiation\r\n"
    await wire.writer.start_tls(client_tls, server_hostname="localhost")
    # Had the injected USER survived, PASS would log in.
    assert await wire.command(f"PASS {PASSWORD}") == b"-ERR Send USER first\r\n"
    assert await wire.command("STLS") == b"-ERR Already using TLS\r\n"
    assert (await wire.login()).startswith(b"+OK")
    assert "dropped" in caplog.text
    await wire.close()


async def test_tls_handshake_failure_is_contained(
    backend: MemoryPop3Backend, serve: Serve, server_tls: ssl.SSLContext, connect: Connect
) -> None:
    server = await serve(backend, starttls_context=server_tls)
    wire = await connect(server)
    assert await wire.command("STLS") == b"+OK Begin TLS negotiation\r\n"
    await wire.send(b"this is not a TLS ClientHello\r\n")
    assert await wire.closed()
    other = await connect(server)
    assert (await other.login()).startswith(b"+OK")
    await other.close()


# -- failures, timeouts and shutdown ----------------------------------------------------


async def test_unexpected_error_gets_generic_reply_and_stays_local(
    backend: MemoryPop3Backend, serve: Serve, caplog: pytest.LogCaptureFixture, connect: Connect
) -> None:
    server = await serve(backend)
    backend.broken_uids.add(backend.uids()[0])
    bob = await connect(server)
    await bob.login("bob@example.test", "bob-secret")
    wire = await connect(server)
    await wire.login()
    with caplog.at_level(logging.ERROR):
        reply = await wire.command("RETR 1")
    assert reply == b"-ERR [SYS/TEMP] Internal server error\r\n"
    assert "hunter2" in caplog.text  # logged with the traceback, never sent
    assert await wire.command("NOOP") == b"+OK\r\n"
    assert (await wire.command("RETR 2")).startswith(b"+OK")
    assert unstuff(await wire.block()) == MESSAGES[1]
    assert await bob.command("STAT") == b"+OK 0 0\r\n"
    await bob.close()
    await wire.close()


async def test_message_removed_meanwhile(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend))
    await wire.login()
    del backend.boxes[USER][backend.uids()[0]]
    assert await wire.command("RETR 1") == b"-ERR Message is no longer available\r\n"
    await wire.close()


async def test_idle_timeout_closes_without_update(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    wire = await connect(await serve(backend, idle_timeout=0.3))
    await wire.login()
    assert (await wire.command("DELE 1")).startswith(b"+OK")
    # RFC 1939 section 3: close without entering UPDATE. The RFC suggests closing without
    # a word; like Dovecot we say why first, so a client can tell a timeout from a crash.
    assert await wire.line() == b"-ERR Autologout; idle for too long\r\n"
    assert await wire.closed()
    assert await asyncio.wait_for(backend.released.get(), TIMEOUT) == USER
    assert backend.deleted == []


async def test_close_ends_idle_sessions_and_finishes_busy_ones(
    backend: MemoryPop3Backend, serve: Serve, connect: Connect
) -> None:
    server = await serve(backend)
    idle = await connect(server)
    await idle.login("bob@example.test", "bob-secret")
    busy = await connect(server)
    await busy.login()
    assert (await busy.command("DELE 1")).startswith(b"+OK")
    backend.gate = asyncio.Event()
    await busy.send(b"RETR 2\r\n")
    await asyncio.wait_for(backend.reading.wait(), TIMEOUT)
    closing = asyncio.create_task(server.close())
    assert await idle.closed()
    backend.gate.set()
    assert await busy.line() == f"+OK {len(MESSAGES[1])} octets\r\n".encode()
    assert unstuff(await busy.block()) == MESSAGES[1]
    assert await busy.closed()
    await asyncio.wait_for(closing, TIMEOUT)
    assert {backend.released.get_nowait(), backend.released.get_nowait()} == {
        USER,
        "bob@example.test",
    }
    assert backend.deleted == []
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", server.port)


# -- the session on its own (no sockets) ------------------------------------------------


async def test_session_top_and_retr_edge_cases() -> None:
    memory = MemoryPop3Backend()
    no_body = b"Subject: header only\r\nX-A: 1\r\n"
    bare_lf = b"Subject: bare\n\n.one\ntwo\n"
    no_headers = b"\r\nbody line 1\r\nbody line 2\r\n"
    no_final_newline = b"Subject: x\r\n\r\nlast line"
    memory.add_user(USER, PASSWORD, [no_body, bare_lf, no_headers, no_final_newline, b""])
    session = Pop3Session(memory, allow_plaintext_auth=True)
    assert session.greeting().data.startswith(b"+OK ")
    await session.handle_line(f"USER {USER}\r\n".encode())
    assert (await session.handle_line(f"PASS {PASSWORD}".encode())).data.startswith(b"+OK")
    assert session.state.value == "transaction"

    async def data(command: str) -> bytes:
        return (await session.handle_line(command.encode() + b"\r\n")).data

    assert await data("TOP 1 5") == b"+OK Top of message follows\r\n" + no_body + b".\r\n"
    assert await data("TOP 2 1") == b"+OK Top of message follows\r\nSubject: bare\n\n..one\n.\r\n"
    assert await data("TOP 3 1") == b"+OK Top of message follows\r\n\r\nbody line 1\r\n.\r\n"
    # A missing final CRLF is supplied so the terminator stands on its own line.
    assert (await data("RETR 4")).endswith(b"\r\nlast line\r\n.\r\n")
    assert await data("RETR 5") == b"+OK 0 octets\r\n.\r\n"
    reply = await session.handle_line(b"QUIT\r\n")
    assert reply.after is After.CLOSE
    assert session.state is State.UPDATE
    assert (await session.handle_line(b"NOOP\r\n")).data.startswith(b"-ERR NOOP is not valid")
    await session.close()
    assert memory.locked == set()


async def test_session_close_releases_without_deleting() -> None:
    memory = MemoryPop3Backend()
    memory.add_user(USER, PASSWORD, MESSAGES)
    session = Pop3Session(memory, allow_plaintext_auth=True)
    auth = plain_auth(USER, PASSWORD)
    assert (await session.handle_line(f"AUTH PLAIN {auth}\r\n".encode())).data.startswith(b"+OK")
    assert (await session.handle_line(b"DELE 1\r\n")).data.startswith(b"+OK")
    await session.close()
    await session.close()
    assert memory.deleted == []
    assert memory.released.qsize() == 1


# -- interoperability -------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("fetchmail") is None,
    reason="fetchmail is not installed (Debian: apt-get install fetchmail)",
)
@pytest.mark.parametrize("transport", ["plain", "pop3s"])
async def test_fetchmail_retrieves_every_message(
    transport: str,
    backend: MemoryPop3Backend,
    serve: Serve,
    server_tls: ssl.SSLContext,
    tls_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    if transport == "pop3s":
        server = await serve(backend, ssl_context=server_tls, allow_plaintext_auth=False)
        tls_options = f'ssl sslcertck sslcertfile "{tls_files[0]}" '
    else:
        server = await serve(backend)
        tls_options = "sslproto '' "
    uids = backend.uids()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rcfile = tmp_path / "fetchmailrc"
    rcfile.write_text(
        "set no bouncemail\n"
        "set invisible\n"
        # fetchmail checks the certificate against the poll name, and ours names localhost.
        f"poll localhost protocol POP3 service {server.port}\n"
        f'  user "{USER}" there with password "{PASSWORD}"\n'
        f"  options {tls_options}fetchall no keep no rewrite no stripcr no forcecr no mimedecode\n"
        f'  mda "cat > $(mktemp {inbox}/message.XXXXXX)"\n'
    )
    rcfile.chmod(0o600)
    environment = {**os.environ, "FETCHMAILHOME": str(tmp_path), "HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        "fetchmail",
        "--verbose",
        "--nodetach",
        "--nosyslog",
        "--fetchmailrc",
        str(rcfile),
        "--idfile",
        str(tmp_path / "fetchids"),
        "--pidfile",
        str(tmp_path / "fetchmail.pid"),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode(errors="replace")
    delivered = sorted(path.read_bytes() for path in inbox.iterdir())
    assert delivered == sorted(MESSAGES)
    assert backend.deleted == [uids]
    assert backend.boxes[USER] == {}
