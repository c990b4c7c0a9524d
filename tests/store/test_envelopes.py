"""The SMTP envelope stored with each copy, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace

from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import aliases, appends, ingest, mailboxes, message_queries, messages
from mailcue_server.store.db import Database
from mailcue_server.store.domain_models import Alias
from mailcue_server.store.envelopes import SmtpEnvelope, read_envelope
from mailcue_server.store.ingest import Incoming, IngestQueue
from mailcue_server.store.mail_models import INBOX

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

RAW = b"From: s@example.test\r\nTo: alice@example.test\r\nSubject: env\r\n\r\nHello.\r\n"
ENVELOPE = SmtpEnvelope(
    mail_from="s@example.test",
    rcpt_to=("Alice@example.test", "team@example.test", "nobody-owns@example.test"),
    client_ip="127.0.0.1",
    helo="client.test",
    tls=True,
    auth="s@example.test",
    listener="submission",
    transaction_id="0123456789AB",
)


async def stored_envelope(address: str, uid: int, folder: str = INBOX) -> SmtpEnvelope | None:
    message = await message_queries.get_by_uid(address, folder, uid)
    return read_envelope(message.envelope)


async def test_each_copy_keeps_the_envelope_and_the_recipients_that_led_to_it(
    db: Database,
) -> None:
    await Alias.all().delete()  # PostgreSQL: one database per module, aliases not emptied
    await aliases.create_alias(
        aliases.parse_source("team@example.test"),
        aliases.parse_destinations("alice@example.test, bob@example.test"),
    )
    queue = IngestQueue(bus=MemoryBus(), create_mailboxes=True)
    await queue.start()
    try:
        result = await queue.submit(
            Incoming(raw=RAW, recipients=ENVELOPE.rcpt_to, expand_aliases=True, envelope=ENVELOPE)
        )
    finally:
        await queue.close()
        await Alias.all().delete()
    where = {s.mailbox: s.uid for s in result.stored}
    assert sorted(where) == ["alice@example.test", "bob@example.test", "nobody-owns@example.test"]

    alice = await stored_envelope("alice@example.test", where["alice@example.test"])
    assert alice is not None
    # Alice was named herself and reached through the alias: one copy, both reasons.
    assert alice.delivered_to == ("Alice@example.test", "team@example.test")
    assert alice.rcpt_to == ENVELOPE.rcpt_to
    assert (alice.mail_from, alice.client_ip, alice.helo, alice.tls, alice.auth) == (
        "s@example.test",
        "127.0.0.1",
        "client.test",
        True,
        "s@example.test",
    )
    assert (alice.listener, alice.transaction_id) == ("submission", "0123456789AB")
    bob = await stored_envelope("bob@example.test", where["bob@example.test"])
    assert bob is not None and bob.delivered_to == ("team@example.test",)
    other = await stored_envelope("nobody-owns@example.test", where["nobody-owns@example.test"])
    assert other is not None and other.delivered_to == ("nobody-owns@example.test",)
    assert (
        bytes(
            (
                await message_queries.get_by_uid(
                    "bob@example.test", INBOX, where["bob@example.test"]
                )
            ).raw_bytes
        )
        == RAW
    )


async def test_null_sender_and_mail_without_an_envelope(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("carol@example.test", bus=bus)
    bounce = SmtpEnvelope("", ("carol@example.test",), "::1", "mx.test", False, None, "lmtp")
    [delivered, plain] = await ingest.ingest_many(
        [
            Incoming(raw=RAW, recipients=("carol@example.test",), envelope=bounce),
            Incoming(raw=RAW, recipients=("carol@example.test",)),
        ],
        bus=bus,
    )
    got = await stored_envelope("carol@example.test", delivered.stored[0].uid)
    assert got is not None
    assert (got.mail_from, got.auth, got.tls, got.client_ip) == ("", None, False, "::1")
    assert await stored_envelope("carol@example.test", plain.stored[0].uid) is None
    appended = await appends.append("carol@example.test", "Drafts", RAW, bus=bus)
    assert await stored_envelope("carol@example.test", appended.uid, "Drafts") is None


async def test_copy_and_move_keep_the_envelope(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("dave@example.test", bus=bus)
    envelope = SmtpEnvelope(
        "s@example.test", ("dave@example.test",), "127.0.0.1", "c", False, None, "smtp"
    )
    [result] = await ingest.ingest_many(
        [Incoming(raw=RAW, recipients=("dave@example.test",), envelope=envelope)], bus=bus
    )
    uid = result.stored[0].uid
    copied = await messages.copy("dave@example.test", INBOX, [uid], "Junk", bus=bus)
    moved = await messages.move("dave@example.test", INBOX, [uid], "Trash", bus=bus)
    for folder, new_uid in (("Junk", copied[uid]), ("Trash", moved[uid])):
        got = await stored_envelope("dave@example.test", new_uid, folder)
        assert got is not None and got.delivered_to == ("dave@example.test",), folder


def test_the_stored_json_reads_back_whatever_the_strings_hold() -> None:
    envelope = SmtpEnvelope(
        mail_from='jörg"\\\x01@exämple.test',
        rcpt_to=("zoë@mail.test", 'a"b@c.test'),
        client_ip="::1",
        helo="[IPv6:::1]",
        tls=False,
        auth="user with spaces\t",
        listener="smtps",
        transaction_id="",
    )
    text = envelope.encoded(["zoë@mail.test"])
    assert text.isascii()
    assert read_envelope(json.loads(text)) == replace(envelope, delivered_to=("zoë@mail.test",))
    anonymous = replace(envelope, auth=None, tls=True)
    assert json.loads(anonymous.encoded([]))["auth"] is None
    assert read_envelope(json.loads(anonymous.encoded([]))) == anonymous
    assert read_envelope(None) is None and read_envelope([]) is None
