"""Mail through a whole node: SMTP in, stored byte for byte, POP3 out, events on the bus."""

from __future__ import annotations

import asyncio
import poplib
import smtplib
import ssl
from email.message import EmailMessage

import aiosmtplib

from mailcue_server.app import MailcueServer
from mailcue_server.store import folder_counts, mailboxes, message_queries
from mailcue_server.store.mail_models import INBOX

PASSWORD = "mailbox-password"


def _message(subject: str, to: str, body: str = "Hello from the test.\r\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@example.test>"
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


async def _smtp_send(server: MailcueServer, raw: bytes, recipients: list[str]) -> None:
    """Plain SMTP with the stdlib client, in a thread: the server runs on this loop."""

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
            client.sendmail("sender@example.test", recipients, raw)

    await asyncio.to_thread(send)


def _client_tls(server: MailcueServer) -> ssl.SSLContext:
    assert server.tls is not None
    return server.tls.client_context()


async def test_smtp_delivery_is_stored_exactly_and_creates_the_mailbox(
    server: MailcueServer,
) -> None:
    raw = _message("stored exactly", "new.person@mailcue.local")
    await _smtp_send(server, raw, ["new.person@mailcue.local"])
    page = await message_queries.list_page("new.person@mailcue.local", INBOX, offset=0, limit=10)
    assert page.total == 1
    stored = await message_queries.raw_bytes(
        "new.person@mailcue.local", INBOX, page.messages[0].uid
    )
    assert stored.endswith(raw)
    return_path, _, rest = stored.partition(b"\r\n")
    assert return_path == b"Return-Path: <sender@example.test>"
    received, _, rest = rest.partition(b"\r\n")
    assert received.startswith(b"Received: from ") and rest.endswith(raw)


async def test_submission_refuses_mail_before_auth(server: MailcueServer) -> None:
    raw = _message("no auth", "reader@mailcue.local")
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=server.port("submission"), tls_context=_client_tls(server)
    ) as client:
        try:
            await client.sendmail("writer@mailcue.local", ["reader@mailcue.local"], raw)
        except aiosmtplib.SMTPResponseException as exc:
            assert exc.code == 530
        else:
            raise AssertionError("submission accepted mail without AUTH")
    assert await mailboxes.find_mailbox("reader@mailcue.local") is None


async def test_wrong_password_is_535(server: MailcueServer) -> None:
    assert server.bus is not None
    await mailboxes.create_mailbox("guarded@mailcue.local", bus=server.bus, password=PASSWORD)
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=server.port("submission"), tls_context=_client_tls(server)
    ) as client:
        try:
            await client.login("guarded@mailcue.local", "not-the-password")
        except aiosmtplib.SMTPAuthenticationError as exc:
            assert exc.code == 535
        else:
            raise AssertionError("a wrong password was accepted")


async def test_submission_with_starttls_and_auth(server: MailcueServer) -> None:
    assert server.bus is not None
    await mailboxes.create_mailbox("author@mailcue.local", bus=server.bus, password=PASSWORD)
    raw = _message("over starttls", "audience@mailcue.local")
    await aiosmtplib.send(
        raw,
        sender="author@mailcue.local",
        recipients=["audience@mailcue.local"],
        hostname="127.0.0.1",
        port=server.port("submission"),
        start_tls=True,
        tls_context=_client_tls(server),
        username="author@mailcue.local",
        password=PASSWORD,
    )
    page = await message_queries.list_page("audience@mailcue.local", INBOX, offset=0, limit=10)
    assert page.total == 1 and page.messages[0].subject == "over starttls"


async def test_smtps_with_auth(server: MailcueServer) -> None:
    assert server.bus is not None
    await mailboxes.create_mailbox("implicit@mailcue.local", bus=server.bus, password=PASSWORD)
    raw = _message("over smtps", "implicit@mailcue.local")

    def send() -> None:
        with smtplib.SMTP_SSL(
            "127.0.0.1", server.port("smtps"), context=_client_tls(server)
        ) as client:
            client.login("implicit@mailcue.local", PASSWORD)
            client.sendmail("implicit@mailcue.local", ["implicit@mailcue.local"], raw)

    await asyncio.to_thread(send)
    page = await message_queries.list_page("implicit@mailcue.local", INBOX, offset=0, limit=10)
    assert [m.subject for m in page.messages] == ["over smtps"]


async def test_pop3_retrieves_what_smtp_stored_and_dele_removes_it(
    server: MailcueServer,
) -> None:
    assert server.bus is not None
    address = "popper@mailcue.local"
    await mailboxes.create_mailbox(address, bus=server.bus, password=PASSWORD)
    sent = [_message(f"pop {n}", address, body=f".leading dot line {n}\r\n") for n in range(3)]
    for raw in sent:
        await _smtp_send(server, raw, [address])

    def pop_all() -> list[bytes]:
        box = poplib.POP3("127.0.0.1", server.port("pop3"))
        box.stls(_client_tls(server))
        box.user(address)
        box.pass_(PASSWORD)
        count, _ = box.stat()
        got = [b"\r\n".join(box.retr(n + 1)[1]) + b"\r\n" for n in range(count)]
        for n in range(count):
            box.dele(n + 1)
        box.quit()
        return got

    retrieved = await asyncio.to_thread(pop_all)
    assert len(retrieved) == 3
    for raw, got in zip(sent, retrieved, strict=True):
        assert got.endswith(raw)
    assert (await folder_counts.folder_status(address)).exists == 0


async def test_received_event_follows_the_commit(server: MailcueServer) -> None:
    assert server.bus is not None
    from mailcue_server.events.bus import EventType, channel_for

    address = "watched@mailcue.local"
    async with server.bus.subscribe([channel_for(None)]) as events:
        await _smtp_send(server, _message("event", address), [address])
        async with asyncio.timeout(5):
            async for event in events:
                if event.type == EventType.EMAIL_RECEIVED and event.mailbox == address:
                    break
    assert event.uid is not None
    stored = await message_queries.get_by_uid(address, INBOX, event.uid)
    assert stored.subject == "event"


async def test_imap_sees_smtp_mail_and_idle_wakes_within_a_second(
    server: MailcueServer,
) -> None:
    import aioimaplib

    assert server.bus is not None
    address = "idler@mailcue.local"
    await mailboxes.create_mailbox(address, bus=server.bus, password=PASSWORD)
    raw = _message("seen over imap", address)
    await _smtp_send(server, raw, [address])

    client = aioimaplib.IMAP4_SSL(
        host="127.0.0.1", port=server.port("imaps"), ssl_context=_client_tls(server)
    )
    await client.wait_hello_from_server()
    assert (await client.login(address, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    fetched = await client.fetch("1", "(BODY.PEEK[])")
    assert fetched.result == "OK"
    assert any(isinstance(line, bytearray) and bytes(line).endswith(raw) for line in fetched.lines)

    idle = await client.idle_start(timeout=10)
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await _smtp_send(server, _message("wake up", address), [address])
    pushed = await asyncio.wait_for(client.wait_server_push(), timeout=5)
    woke_after = loop.time() - sent_at
    client.idle_done()
    await asyncio.wait_for(idle, 5)
    assert any(
        b"EXISTS" in (line if isinstance(line, bytes) else str(line).encode()) for line in pushed
    )
    assert woke_after < 1.0
    await client.logout()
