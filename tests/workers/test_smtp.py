"""The SMTP worker against real clients on 127.0.0.1 (STYLE rule 28).

Clients: smtplib (in a thread, since the server shares this loop), aiosmtplib,
raw sockets for byte-exact dialogues, and Debian's swaks when installed.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiosmtplib
import pytest

from certs import self_signed_files, server_context
from mailcue_server.errors import ConfigError
from mailcue_server.workers.smtp import (
    Delivery,
    Listener,
    ListenerKind,
    RecipientVerdict,
    SmtpServer,
    TlsMode,
)
from mailcue_server.workers.smtp.data import REPLY_TOO_MUCH, read_data
from mailcue_server.workers.smtp.handler import has_bare_newline
from mailcue_server.workers.smtp.received import clean_helo, received_header, with_protocol
from mailcue_server.workers.smtp.server import enhance_reply

DATA = Path(__file__).parent.parent / "data" / "smtp"
HOST = "127.0.0.1"
MAX_SIZE = 64 * 1024
SECRET = "db password=hunter2"
USER, PASSWORD = "alice@mail.test", "s3cret"
RECEIVED = re.compile(
    r"Received: from (?P<helo>\S+) \(\[(?P<ip>[^\]]+)\]\)\s+by mail\.test with (?P<proto>\w+)"
    r" id (?P<id>[0-9A-F]{16})(?:\s+for <(?P<rcpt>[^>]+)>)?;\s+(?P<date>.+)\r\n"
)


@dataclass
class MemorySink:
    """The Sink Protocol in memory; knobs let a test choose the outcome."""

    rejected: dict[str, RecipientVerdict] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    deliveries: list[Delivery] = field(default_factory=list)
    foreign_senders: set[str] = field(default_factory=set)

    async def check_recipient(
        self, address: str, *, authenticated: str | None
    ) -> RecipientVerdict:
        if address == "explode@mail.test":
            raise RuntimeError(SECRET)
        return self.rejected.get(address, RecipientVerdict.ACCEPT)

    async def check_sender(self, address: str, *, authenticated: str) -> bool:
        return address not in self.foreign_senders

    async def deliver(self, envelope: Delivery) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failing.intersection(envelope.rcpt_tos):
            raise RuntimeError(SECRET)
        self.deliveries.append(envelope)

    async def authenticate(self, username: str, password: str, *, client_ip: str) -> str | None:
        return username.lower() if (username.lower(), password) == (USER, PASSWORD) else None


@dataclass
class Rig:
    sink: MemorySink
    server: SmtpServer
    ports: dict[str, int]
    client_tls: ssl.SSLContext


LISTENERS = {
    "smtp": Listener(kind=ListenerKind.SMTP, tls=TlsMode.STARTTLS),
    "submission": Listener(kind=ListenerKind.SUBMISSION, tls=TlsMode.STARTTLS, require_auth=True),
    "smtps": Listener(kind=ListenerKind.SMTPS, tls=TlsMode.IMPLICIT, require_auth=True),
    "plain_submission": Listener(
        kind=ListenerKind.SUBMISSION, require_auth=True, allow_plaintext_auth=True
    ),
    "lmtp": Listener(kind=ListenerKind.LMTP),
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway self-signed certificate: (server context, client context trusting it)."""
    cert_file, key_file = self_signed_files(tmp_path_factory.mktemp("tls"), "mail.test")
    return server_context(cert_file, key_file), ssl.create_default_context(cafile=cert_file)


@pytest.fixture
async def rig(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[Rig]:
    sink = MemorySink()
    server = SmtpServer(
        sink,
        list(LISTENERS.values()),
        hostname="mail.test",
        tls_context=tls[0],
        max_message_size=MAX_SIZE,
    )
    ports = await server.start()
    yield Rig(sink, server, dict(zip(LISTENERS, ports, strict=True)), tls[1])
    await server.close(grace=5)


def eml(name: str) -> bytes:
    return (DATA / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def received(delivery: Delivery, sent: bytes) -> re.Match[str]:
    """Check that raw is exactly one Received header plus the sent bytes."""
    assert delivery.raw.endswith(sent)
    prefix = delivery.raw[: len(delivery.raw) - len(sent)].decode()
    match = RECEIVED.fullmatch(prefix)
    assert match is not None, prefix
    stamp = parsedate_to_datetime(match["date"])
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    return match


class Dialog:
    """A raw SMTP client: bytes out, whole replies in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.greeting = ""

    async def reply(self) -> str:
        lines: list[str] = []
        async with asyncio.timeout(5):
            while not lines or lines[-1][3:4] != " ":
                line = await self.reader.readline()
                assert line, f"connection closed after {lines}"
                lines.append(line.decode().rstrip("\r\n"))
        return "\n".join(lines)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, line: str) -> str:
        await self.send(line.encode() + b"\r\n")
        return await self.reply()

    async def transaction(self, rcpts: list[str], hello: str = "EHLO client.test") -> None:
        assert (await self.command(hello)).startswith("250")
        assert (await self.command("MAIL FROM:<a@client.test>")).startswith("250 2.1.0")
        for rcpt in rcpts:
            assert (await self.command(f"RCPT TO:<{rcpt}>")).startswith("250 2.1.5")
        assert (await self.command("DATA")).startswith("354")


@asynccontextmanager
async def talk(port: int, tls: ssl.SSLContext | None = None) -> AsyncIterator[Dialog]:
    reader, writer = await asyncio.open_connection(
        HOST, port, ssl=tls, server_hostname="localhost" if tls else None
    )
    dialog = Dialog(reader, writer)
    dialog.greeting = await dialog.reply()
    try:
        yield dialog
    finally:
        writer.close()
        with suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


# --- delivery over real clients -------------------------------------------------------


async def test_smtplib_plain_keeps_bytes_exact(rig: Rig) -> None:
    sent = eml("plain.eml")

    def send() -> None:
        with smtplib.SMTP(HOST, rig.ports["smtp"], local_hostname="client.test") as client:
            client.sendmail("alice@client.test", ["bob@mail.test"], sent)

    await asyncio.to_thread(send)
    [delivery] = rig.sink.deliveries
    stamp = received(delivery, sent)
    assert (stamp["helo"], stamp["ip"], stamp["proto"], stamp["rcpt"]) == (
        "client.test",
        HOST,
        "ESMTP",
        "bob@mail.test",
    )
    assert delivery.mail_from == "alice@client.test"
    assert delivery.rcpt_tos == ("bob@mail.test",)
    assert (delivery.listener, delivery.peer, delivery.authenticated_as) == ("smtp", HOST, None)
    assert not delivery.smtputf8


async def test_smtplib_starttls_and_smtps_with_auth(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    sent = eml("plain.eml")

    def send() -> None:
        with smtplib.SMTP(HOST, rig.ports["smtp"]) as client:
            client.starttls(context=rig.client_tls)
            client.ehlo()
            assert not client.has_extn("auth")  # inbound SMTP never offers AUTH
            client.sendmail("alice@client.test", ["bob@mail.test", "carol@mail.test"], sent)
        with smtplib.SMTP_SSL(HOST, rig.ports["smtps"], context=rig.client_tls) as client:
            client.user, client.password = "Alice@Mail.Test", PASSWORD
            client.ehlo()
            client.auth("LOGIN", client.auth_login, initial_response_ok=False)
            client.sendmail(USER, ["bob@mail.test"], sent)

    await asyncio.to_thread(send)
    starttls, smtps = rig.sink.deliveries
    assert received(starttls, sent)["proto"] == "ESMTPS"
    assert received(starttls, sent)["rcpt"] is None  # several recipients: no "for"
    assert received(smtps, sent)["proto"] == "ESMTPSA"
    assert (smtps.listener, smtps.authenticated_as) == ("smtps", USER)
    assert not [r for r in caplog.records if "login_data" in r.getMessage()]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("listener", ["submission", "smtps"])
async def test_aiosmtplib_auth(rig: Rig, mechanism: str, listener: str) -> None:
    sent = eml("plain.eml")
    client = aiosmtplib.SMTP(
        hostname=HOST,
        port=rig.ports[listener],
        tls_context=rig.client_tls,
        use_tls=listener == "smtps",
        start_tls=listener == "submission",
    )
    async with client:
        await client.ehlo()  # aiosmtplib needs a fresh EHLO after STARTTLS (STACK-NOTES)
        login = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        assert (await login(USER, PASSWORD)).code == 235
        await client.sendmail(USER, ["bob@mail.test"], sent)
    [delivery] = rig.sink.deliveries
    assert received(delivery, sent)["proto"] == "ESMTPSA"
    assert (delivery.listener, delivery.authenticated_as) == (listener, USER)


async def test_eight_bit_body_and_smtputf8_address(rig: Rig) -> None:
    sent = eml("utf8.eml")
    async with aiosmtplib.SMTP(hostname=HOST, port=rig.ports["smtp"], start_tls=False) as client:
        await client.sendmail(
            "jörg@exämple.test",
            ["zoë@mail.test"],
            sent,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    [delivery] = rig.sink.deliveries
    stamp = received(delivery, sent)
    assert (stamp["proto"], stamp["rcpt"]) == ("UTF8SMTP", "zoë@mail.test")
    assert (delivery.mail_from, delivery.rcpt_tos, delivery.smtputf8) == (
        "jörg@exämple.test",
        ("zoë@mail.test",),
        True,
    )


async def test_null_sender_and_recipient_policy(rig: Rig) -> None:
    rig.sink.rejected = {
        "ghost@mail.test": RecipientVerdict.UNKNOWN_USER,
        "someone@elsewhere.test": RecipientVerdict.RELAY_DENIED,
    }
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.command("EHLO client.test")
        assert (await smtp.command("MAIL FROM:<>")).startswith("250 2.1.0")
        assert (await smtp.command("RCPT TO:<ghost@mail.test>")).startswith("550 5.1.1")
        assert (await smtp.command("RCPT TO:<someone@elsewhere.test>")).startswith("550 5.7.1")
        assert (await smtp.command("RCPT TO:<zoë@mail.test>")).startswith("553 5.6.7")
        assert (await smtp.command("RCPT TO:<bob@mail.test>")).startswith("250 2.1.5")
        # RFC 5321 section 4.5.1: <Postmaster> needs no domain; it is ours.
        assert (await smtp.command("RCPT TO:<Postmaster>")).startswith("250 2.1.5")
        await smtp.command("DATA")
        assert (await smtp.command("Subject: bounce\r\n\r\nhi\r\n.")).startswith("250 2.0.0")
    [delivery] = rig.sink.deliveries
    assert (delivery.mail_from, delivery.rcpt_tos) == (
        "",
        ("bob@mail.test", "postmaster@mail.test"),
    )


# --- capabilities, AUTH rules and errors -------------------------------------------------


def keywords(ehlo: str) -> set[str]:
    return {line[4:].split()[0] for line in ehlo.splitlines()[1:]}


async def test_ehlo_capabilities_and_auth_rules(rig: Rig) -> None:
    common = {"SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES", "HELP"}
    async with talk(rig.ports["smtp"]) as smtp:
        assert smtp.greeting == "220 mail.test ESMTP MailCue"
        ehlo = await smtp.command("EHLO client.test")
        assert keywords(ehlo) == common | {"STARTTLS"}
        assert f"250-SIZE {MAX_SIZE}" in ehlo.splitlines()
        assert (await smtp.command("AUTH PLAIN AGFsaWNlAHMzY3JldA==")).startswith("538 5.7.11")
    async with talk(rig.ports["submission"]) as submission:
        assert "AUTH" not in keywords(await submission.command("EHLO client.test"))
        assert (await submission.command("AUTH LOGIN")).startswith("538 5.7.11")
        assert (await submission.command("MAIL FROM:<a@b.test>")).startswith("530 5.7.0")
    async with talk(rig.ports["smtps"], rig.client_tls) as smtps:
        ehlo = await smtps.command("EHLO client.test")
        assert keywords(ehlo) == common | {"AUTH"}
        assert "250-AUTH LOGIN PLAIN" in ehlo.splitlines()
    async with talk(rig.ports["plain_submission"]) as plain:
        assert "AUTH" in keywords(await plain.command("EHLO client.test"))
        assert (await plain.command("AUTH PLAIN AGFsaWNlAHdyb25n")).startswith("535 5.7.8")
        assert (await plain.command("MAIL FROM:<a@b.test>")).startswith("530 5.7.0")
        assert (await plain.command("AUTH PLAIN AGFsaWNlQG1haWwudGVzdABzM2NyZXQ=")).startswith(
            "235"
        )
        assert (await plain.command("MAIL FROM:<a@b.test>")).startswith("250 2.1.0")


async def test_wrong_password_is_535(rig: Rig) -> None:
    def login() -> None:
        with smtplib.SMTP(HOST, rig.ports["submission"]) as client:
            client.starttls(context=rig.client_tls)
            client.login(USER, "wrong")

    with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
        await asyncio.to_thread(login)
    assert failure.value.smtp_code == 535


async def test_a_sender_the_identity_does_not_own_is_553(rig: Rig) -> None:
    rig.sink.foreign_senders = {"boss@mail.test"}

    def attempt() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP(HOST, rig.ports["submission"]) as client:
            client.starttls(context=rig.client_tls)
            client.login(USER, PASSWORD)
            refused = client.mail("boss@mail.test")
            client.rset()
            accepted = client.mail(USER)
        with smtplib.SMTP(HOST, rig.ports["smtp"]) as anonymous:
            anonymous.ehlo("c.test")
            inbound = anonymous.mail("boss@mail.test")  # no identity: not the sink's question
        return refused, accepted, inbound

    refused, accepted, inbound = await asyncio.to_thread(attempt)
    assert refused[0] == 553 and refused[1].startswith(b"5.7.1 ")
    assert (accepted[0], inbound[0]) == (250, 250)
    assert rig.sink.deliveries == []


async def test_submission_without_auth_is_530(rig: Rig) -> None:
    def send() -> None:
        with smtplib.SMTP(HOST, rig.ports["submission"]) as client:
            client.starttls(context=rig.client_tls)
            client.sendmail(USER, ["bob@mail.test"], eml("plain.eml"))

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await asyncio.to_thread(send)
    assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (530, b"5.7.0")
    assert rig.sink.deliveries == []


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (["MAIL FROM:<a@b.test>"], "503 5.5.1"),  # before EHLO
        (["EHLO c.test", "MAIL TO:<a@b.test>"], "501 5.5.4"),
        (["EHLO c.test", "MAIL FROM:<a@@b>"], "553 5.1.3"),
        (["EHLO c.test", "MAIL FROM:<a@b.test> SIZE=big"], "501 5.5.4"),
        (["EHLO c.test", "MAIL FROM:<a@b.test> FOO=1"], "555 5.5.4"),
        (["EHLO c.test", "MAIL FROM:<ä@b.test>"], "553 5.6.7"),  # no SMTPUTF8
        (["EHLO c.test", "RCPT TO:<a@b.test>"], "503 5.5.1"),
        (["EHLO c.test", "MAIL FROM:<a@b.test>", "DATA"], "503 5.5.1"),
        (["EHLO c.test", "MAIL FROM:<a@b.test>", "MAIL FROM:<a@b.test>"], "503 5.5.1"),
        (["EHLO c.test", "NOOP " + "x" * 600], "500 5.5.2"),
        (["EHLO c.test", "NOOP " + "x" * 3000], "500 5.5.2"),
        (["EHLO c.test", "WHAT"], "500 5.5.1"),
    ],
)
async def test_malformed_commands(rig: Rig, commands: list[str], expected: str) -> None:
    async with talk(rig.ports["smtp"]) as smtp:
        for command in commands:
            reply = await smtp.command(command)
        assert reply.startswith(expected), reply
        assert (await smtp.command("NOOP")).startswith("250 2.0.0")  # still in step


async def test_oversized_messages_get_552(rig: Rig) -> None:
    body = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * (MAX_SIZE // 100 + 10)
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.command("EHLO client.test")
        declared = await smtp.command(f"MAIL FROM:<a@client.test> SIZE={MAX_SIZE + 1}")
        assert declared.startswith("552 5.3.4")
        await smtp.transaction(["bob@mail.test"], hello="RSET")
        await smtp.send(body + b".\r\n")
        assert (await smtp.reply()).startswith("552 5.3.4")
        # Its twin with bare LF line ends (one long "line" to an SMTP reader) too.
        await smtp.transaction(["bob@mail.test"], hello="RSET")
        await smtp.send(body.replace(b"\r\n", b"\n") + b"\r\n.\r\n")
        assert (await smtp.reply()).startswith("552 5.3.4")
        # And a single line longer than the limit.
        await smtp.transaction(["bob@mail.test"], hello="RSET")
        await smtp.send(b"Subject: one line\r\n\r\n" + b"y" * (MAX_SIZE + 1) + b"\r\n.\r\n")
        assert (await smtp.reply()).startswith("552 5.3.4")
        assert (await smtp.command("NOOP")).startswith("250 2.0.0")  # still in step
    assert rig.sink.deliveries == []


async def test_lines_over_1000_octets_are_kept_as_sent(rig: Rig) -> None:
    """RFC 5321 section 4.5.3.1.6's limit is not enforced: the message a tester wants is kept."""
    sent = (
        b"Subject: long lines\r\n\r\nshort\r\n"
        + b"y" * 5000
        + b"\r\n"
        + b"." * 3000  # a dot-stuffed long line
        + b"\r\n"
        + b"z" * 20000
        + b"\r\nend\r\n"
    )

    def send() -> None:
        with smtplib.SMTP(HOST, rig.ports["smtp"], local_hostname="client.test") as client:
            client.sendmail("alice@client.test", ["bob@mail.test"], sent)

    await asyncio.to_thread(send)
    [delivery] = rig.sink.deliveries
    received(delivery, sent)


@pytest.mark.parametrize(
    "body",
    [
        b"Subject: a\r\n\r\nline one\nline two",
        b"Subject: a\r\n\r\nline one\rline two",
        b"Subject: a\r\n\r\nhi\n.\nMAIL FROM:<ceo@bank.test>\nRCPT TO:<v@mail.test>\nDATA\nevil\n",
        b"Subject: a\r\n\r\nhi\r\n.\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<v@mail.test>",
        b"Subject: a\r\n\r\nhi\n.\r\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<v@mail.test>",
        b"Subject: a\r\n\r\nhi\r\n.\rMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<v@mail.test>",
    ],
    ids=["bare-lf", "bare-cr", "lf-dot-lf", "crlf-dot-lf", "lf-dot-crlf", "crlf-dot-cr"],
)
async def test_smtp_smuggling_is_rejected(rig: Rig, body: bytes) -> None:
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.transaction(["bob@mail.test"])
        await smtp.send(body + b"\r\n.\r\n")
        assert (await smtp.reply()).startswith("550 5.6.0")
        # The next reply answers our NOOP: nothing inside DATA ran as a command.
        assert (await smtp.command("NOOP")).startswith("250 2.0.0")
    assert rig.sink.deliveries == []


@pytest.mark.parametrize(
    "command",
    [
        "MAIL FROM:<a\0b@client.test>",
        "MAIL FROM:<a@client.test>\0",
        "RCPT TO:<b\0ob@mail.test>",
        "EHLO client\0.test",
        "VRFY b\0ob",
    ],
)
async def test_a_nul_in_a_command_is_501_and_the_session_goes_on(rig: Rig, command: str) -> None:
    async with talk(rig.ports["smtp"]) as smtp:
        assert (await smtp.command("EHLO client.test")).startswith("250")
        if command.startswith("RCPT"):
            assert (await smtp.command("MAIL FROM:<a@client.test>")).startswith("250")

        reply = await smtp.command(command)

        assert reply == "501 5.5.2 Syntax error: NUL character in command"
        assert (await smtp.command("NOOP")).startswith("250 2.0.0")  # still in step
        assert "Syntax: MAIL FROM:" in await smtp.command("HELP MAIL")  # HELP still reads it
    assert rig.sink.deliveries == []


@pytest.mark.parametrize(
    "body",
    [b"Subject: a\r\n\r\nbo\0dy\r\n", b"Subject: a\0b\r\n\r\nbody\r\n", b"\0"],
    ids=["body", "header", "alone"],
)
async def test_a_nul_in_the_content_is_554(rig: Rig, body: bytes) -> None:
    """RFC 2045 section 2.8: no NUL in 8bit data, and BINARYMIME is not offered."""
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.transaction(["bob@mail.test"])
        await smtp.send(body + b"\r\n.\r\n")
        assert await smtp.reply() == "554 5.6.0 Message contains a NUL character"
        assert (await smtp.command("NOOP")).startswith("250 2.0.0")
    assert rig.sink.deliveries == []


def fields(count: int) -> bytes:
    return b"".join(b"X-Field-%d: value\r\n" % n for n in range(count))


async def test_a_header_of_more_than_1000_fields_is_552_and_1000_pass(rig: Rig) -> None:
    folded = b"Subject: one field\r\n folded\r\n\tover three lines\r\n"
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.transaction(["bob@mail.test"])
        await smtp.send(fields(1001) + b"\r\nbody\r\n.\r\n")
        assert await smtp.reply() == "552 5.3.4 Message header has more than 1,000 fields"
        await smtp.transaction(["bob@mail.test"], hello="RSET")
        await smtp.send(folded + fields(999) + b"\r\nbody\r\n.\r\n")
        assert (await smtp.reply()).startswith("250 2.0.0")
    [delivery] = rig.sink.deliveries
    assert delivery.raw.endswith(fields(999) + b"\r\nbody\r\n")


async def test_lmtp_refuses_a_nul_for_each_recipient(rig: Rig) -> None:
    async with talk(rig.ports["lmtp"]) as lmtp:
        await lmtp.transaction(["bob@mail.test", "carol@mail.test"], hello="LHLO client.test")
        await lmtp.send(b"Subject: a\r\n\r\nbo\0dy\r\n.\r\n")
        first, second = await lmtp.reply(), await lmtp.reply()
    assert first == second == "554 5.6.0 Message contains a NUL character"
    assert rig.sink.deliveries == []


async def test_sink_failures_answer_451_without_details(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.sink.failing = {"bob@mail.test"}
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.transaction(["bob@mail.test"])
        failed = await smtp.command("Subject: a\r\n\r\nhi\r\n.")
        assert failed == "451 4.3.0 Temporary server error, try again later"
        assert (await smtp.command("MAIL FROM:<a@client.test>")).startswith("250")  # reset
        raised = await smtp.command("RCPT TO:<explode@mail.test>")
        assert raised == "451 4.3.0 Temporary server error, try again later"
    assert rig.sink.deliveries == []
    assert sum(SECRET in (r.exc_text or "") for r in caplog.records) == 2


async def test_pipelined_commands_after_the_final_dot_still_run(rig: Rig) -> None:
    """RFC 2920: the next command may follow the end of data in the same packet."""
    async with talk(rig.ports["smtp"]) as smtp:
        await smtp.transaction(["bob@mail.test"])
        await smtp.send(b"Subject: one\r\n\r\n..dot\r\n.\r\nMAIL FROM:<a@client.test>\r\n")
        assert (await smtp.reply()).startswith("250 2.0.0 OK id=")
        assert (await smtp.reply()).startswith("250 2.1.0")
        assert (await smtp.command("RCPT TO:<bob@mail.test>")).startswith("250 2.1.5")
        assert (await smtp.command("DATA")).startswith("354")
        assert (await smtp.command(".")).startswith("250 2.0.0 OK id=")  # empty message
    first, empty = rig.sink.deliveries
    assert first.raw.endswith(b"\r\nSubject: one\r\n\r\n.dot\r\n")
    assert empty.raw.endswith(b"\r\n") and b"Subject" not in empty.raw


# --- reading DATA -----------------------------------------------------------------------

CONTENTS = [
    b"",
    b"\r\n",
    b"x\r\n",
    b".\r\n",  # a line that is one dot
    b"..\r\n.x\r\n",
    b"Ends with a dot.\r\nSo does this one.\r\n",
    b"\r\n\r\n.\r\n\r\n",
    b"bare\n.\r\nline feeds\n.\n\r\n",  # a dot after a bare LF is no line start
    b"\n.\r\n.x\r\n",
    b"cr\r\r.\r\n\r\r\n..\r\n\r\r\n",
    b"Subject: t\r\n\r\n" + b"word " * 150 + b"\r\n.start\r\n",
]


def stuffed(content: bytes) -> bytes:
    """What a client sends (RFC 5321 section 4.5.2): a line starting with a dot gets one more."""
    return b"".join(
        b"." + line if line.startswith(b".") else line
        for line in content.replace(b"\r\n", b"\r\n\0").split(b"\0")
    )


async def read_fed(
    stream: bytes, *, limit: int, chunk: int, **options: int
) -> tuple[object, bytes]:
    """Run read_data on ``stream`` arriving ``chunk`` octets at a time; also return the rest."""
    reader = asyncio.StreamReader(limit=limit)

    async def feed() -> None:
        for at in range(0, len(stream), chunk):
            reader.feed_data(stream[at : at + chunk])
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(feed())
    async with asyncio.timeout(5):
        content = await read_data(
            reader,
            max_size=options.get("max_size", 0),
            **{k: v for k, v in options.items() if k != "max_size"},
        )
        await feeding
        return content, await reader.read()


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize(("limit", "chunk"), [(2**16, 4096), (8, 3), (5, 1), (64, 7)])
async def test_read_data_unstuffs_and_stops_at_the_lone_dot(
    content: bytes, limit: int, chunk: int
) -> None:
    stream = stuffed(content) + b".\r\nQUIT\r\n"
    assert await read_fed(stream, limit=limit, chunk=chunk) == (content, b"QUIT\r\n")


async def test_read_data_on_random_streams() -> None:
    pieces = [b"\r", b"\n", b"\r\n", b".", b"a", b"\r\n.", b".\r\n"]
    rng = random.Random(2026)
    for _ in range(400):
        content = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) + b"\r\n"
        stream = stuffed(content) + b".\r\nQUIT\r\n"
        limit, chunk = rng.choice([5, 7, 16, 2**16]), rng.choice([1, 3, 64])
        assert await read_fed(stream, limit=limit, chunk=chunk) == (content, b"QUIT\r\n")


@pytest.mark.parametrize(("limit", "chunk"), [(2**16, 4096), (16, 5)])
async def test_read_data_limits(limit: int, chunk: int) -> None:
    long_line = b"ok\r\n" + b"y" * 5000 + b"\r\n"
    assert await read_fed(long_line + b".\r\nNOOP\r\n", limit=limit, chunk=chunk) == (
        long_line,
        b"NOOP\r\n",
    )
    big = b"z" * 98 + b"\r\n"
    assert await read_fed(big * 3 + b".\r\n", limit=limit, chunk=chunk, max_size=300) == (
        big * 3,
        b"",
    )
    assert await read_fed(big * 4 + b".\r\nNOOP\r\n", limit=limit, chunk=chunk, max_size=300) == (
        REPLY_TOO_MUCH,
        b"NOOP\r\n",
    )
    # Only the size counts, whatever the lines: a long one, or bare LF line ends.
    assert await read_fed(
        long_line + big * 6 + b".\r\n", limit=limit, chunk=chunk, max_size=1500
    ) == (REPLY_TOO_MUCH, b"")
    bare = (big * 4).replace(b"\r\n", b"\n") + b"\r\n"
    assert await read_fed(bare + b".\r\nNOOP\r\n", limit=limit, chunk=chunk, max_size=300) == (
        REPLY_TOO_MUCH,
        b"NOOP\r\n",
    )


@pytest.mark.parametrize(
    ("content", "bare"),
    [
        (b"", False),
        (b"a\r\nb\r\n", False),
        (b"a\nb", True),
        (b"a\rb", True),
        (b"a\r\r\n", True),
        (b"a\r\n\n", True),
        (b"\n\r", True),
    ],
)
def test_has_bare_newline(content: bytes, bare: bool) -> None:
    assert has_bare_newline(content) is bare


# --- LMTP -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failing", "expected"),
    [(set(), ["250 2.0.0", "250 2.0.0"]), ({"b@mail.test"}, ["250 2.0.0", "451 4.3.0"])],
)
async def test_lmtp_replies_once_per_recipient(
    rig: Rig, failing: set[str], expected: list[str]
) -> None:
    rig.sink.failing = failing
    sent = eml("plain.eml")
    async with talk(rig.ports["lmtp"]) as lmtp:
        assert (await lmtp.command("EHLO client.test")).startswith("500 5.5.1")
        await lmtp.transaction(["a@mail.test", "b@mail.test"], hello="LHLO client.test")
        await lmtp.send(sent.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        replies = [await lmtp.reply(), await lmtp.reply()]
        assert [reply[:9] for reply in replies] == expected
        assert (await lmtp.command("NOOP")).startswith("250 2.0.0")
    for delivery, rcpt in zip(rig.sink.deliveries, ["a@mail.test", "b@mail.test"], strict=False):
        assert delivery.rcpt_tos == (rcpt,)
        assert (received(delivery, sent)["proto"], received(delivery, sent)["rcpt"]) == (
            "LMTP",
            rcpt,
        )
    assert len(rig.sink.deliveries) == 2 - len(failing)


async def test_lmtp_too_big_is_refused_for_each_recipient(rig: Rig) -> None:
    async with talk(rig.ports["lmtp"]) as lmtp:
        await lmtp.transaction(["a@mail.test", "b@mail.test"], hello="LHLO client.test")
        await lmtp.send(b"x" * 100 + (b"\r\n" + b"y" * 998) * (MAX_SIZE // 999 + 1) + b"\r\n.\r\n")
        assert [(await lmtp.reply())[:9] for _ in range(2)] == ["552 5.3.4"] * 2
        assert (await lmtp.command("NOOP")).startswith("250 2.0.0")


# --- lifecycle ------------------------------------------------------------------------


async def test_close_lets_a_running_delivery_answer(rig: Rig) -> None:
    rig.sink.gate = asyncio.Event()
    port = rig.ports["smtp"]
    client = aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False)
    await client.connect()
    sending = asyncio.create_task(client.sendmail("a@client.test", ["b@mail.test"], b"Hi\r\n"))
    async with talk(port) as idle:
        async with asyncio.timeout(5):
            await rig.sink.entered.wait()
        closing = asyncio.create_task(rig.server.close(grace=5))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not closing.done()
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, port)
        rig.sink.gate.set()
        _, response = await sending
        assert response.startswith("2.0.0 OK")
        await closing
        assert (await idle.reply()).startswith("421 4.3.2")
    client.close()
    assert len(rig.sink.deliveries) == 1


def test_listener_rules() -> None:
    with pytest.raises(ConfigError):
        Listener(kind=ListenerKind.SMTP, require_auth=True)
    with pytest.raises(ConfigError):
        Listener(kind=ListenerKind.SMTPS, tls=TlsMode.STARTTLS)
    with pytest.raises(ConfigError):
        SmtpServer(MemorySink(), [LISTENERS["smtps"]], hostname="mail.test")


# --- pure pieces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, "ESMTP"),
        ({"extended": False}, "SMTP"),
        ({"tls": True}, "ESMTPS"),
        ({"tls": True, "authenticated": True}, "ESMTPSA"),
        ({"authenticated": True}, "ESMTPA"),
        ({"smtputf8": True, "tls": True}, "UTF8SMTPS"),
        ({"lmtp": True}, "LMTP"),
        ({"lmtp": True, "smtputf8": True}, "UTF8LMTP"),
    ],
)
def test_with_protocol(flags: dict[str, bool], expected: str) -> None:
    base = {"lmtp": False, "extended": True, "tls": False, "authenticated": False}
    assert with_protocol(**{**base, "smtputf8": False, **flags}) == expected


def test_received_header_cannot_be_forged() -> None:
    header = received_header(
        helo="evil\r\nX-Injected: yes (",
        peer_ip="::ffff:192.0.2.7",
        hostname="mail.test",
        protocol="ESMTP",
        message_id="ABC",
        recipient=None,
        now=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )
    assert header == (
        b"Received: from evil??X-Injected:?yes?? ([192.0.2.7])\r\n"
        b"\tby mail.test with ESMTP id ABC;\r\n\tMon, 23 Nov 2026 10:00:00 +0000\r\n"
    )
    assert clean_helo("[IPv6:2001:db8::1]") == "[IPv6:2001:db8::1]"


def test_enhance_reply() -> None:
    assert enhance_reply("503 Error: need RCPT command") == "503 5.5.1 Error: need RCPT command"
    assert enhance_reply('500 Error: command "X" not recognized').startswith("500 5.5.1 ")
    assert enhance_reply("250 2.1.0 OK") == "250 2.1.0 OK"
    assert enhance_reply("354 End data") == "354 End data"
    assert enhance_reply("250-SIZE 10") == "250-SIZE 10"


@pytest.mark.skipif(
    shutil.which("swaks") is None, reason="swaks not installed (apt install swaks)"
)
async def test_swaks(rig: Rig) -> None:
    runs = [
        ["--port", str(rig.ports["smtp"]), "--pipeline", "--to", "bob@mail.test"],
        [
            *("--port", str(rig.ports["submission"]), "--tls", "--auth", "LOGIN"),
            *("--auth-user", USER, "--auth-password", PASSWORD, "--to", "carol@mail.test"),
        ],
    ]
    for extra in runs:
        process = await asyncio.create_subprocess_exec(
            *("swaks", "--server", HOST, "--from", "a@client.test", "--helo", "swaks.test"),
            *("--header", "Subject: from swaks", *extra),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(15):
            output, _ = await process.communicate()
        assert process.returncode == 0, output.decode()
    plain, submitted = rig.sink.deliveries
    for delivery, proto in ((plain, "ESMTP"), (submitted, "ESMTPSA")):
        raw = delivery.raw
        assert raw.startswith(b"Received: from swaks.test ([127.0.0.1])")
        assert f" with {proto} id ".encode() in raw.split(b"\r\n\tfor")[0]
        assert b"\r\nSubject: from swaks\r\n" in raw
