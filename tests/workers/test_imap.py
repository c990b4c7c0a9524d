"""IMAP server with real clients: imaplib, aioimaplib, imapclient and mbsync, over the real store.

Each test starts ``ImapServer`` on 127.0.0.1 port 0 with a memory bus and a
TLS manager in a temp dir (``imap_rig.py``). The blocking clients run in a
thread while the server runs on the test's loop. The core scenarios run on
SQLite and PostgreSQL; the rest on SQLite (``sqlite_only``).
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aioimaplib
import pytest
from imapclient import IMAPClient

from mailcue_server.store import folders, message_queries, messages
from mailcue_server.store.mail_models import decode_flags

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # mail_db
pytest_plugins = ["mail_db", "imap_rig"]
pytest.register_assert_rewrite("imap_rig")

from imap_rig import FIXTURES, NAMES, PASSWORD, TIMEOUT, USER, Rig, sqlite_only  # noqa: E402

RAW = [FIXTURES[name] for name in NAMES]


def connect(port: int) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    client.login(USER, PASSWORD)
    return client


def fetch_map(data: list[object]) -> dict[int, dict[bytes, bytes]]:
    """imaplib FETCH data as ``{seq: {item: literal}}`` for the items sent as literals."""
    found: dict[int, dict[bytes, bytes]] = {}
    current = 0
    for entry in data:
        if not isinstance(entry, tuple):
            continue
        head, literal = entry
        if (seq := re.match(rb"(\d+) \(", head)) is not None:
            current = int(seq.group(1))
        item = re.search(rb"([A-Z0-9.]+(?:\[[^\]]*\])?(?:<\d+>)?) \{\d+\}$", head)
        assert item is not None, head
        found.setdefault(current, {})[item.group(1)] = literal
    return found


async def test_imaplib_reads_every_fetch_item(rig: Rig) -> None:
    await rig.deliver(*RAW)
    port = await rig.serve()

    def client() -> None:
        imap = connect(port)
        typ, listing = imap.list()
        assert typ == "OK"
        assert b'(\\HasNoChildren \\Sent) "/" Sent' in listing
        assert imap.select("INBOX") == ("OK", [b"4"])
        typ, data = imap.fetch(
            "1:4", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
        )
        assert typ == "OK"
        flat = b"".join(d if isinstance(d, bytes) else b"".join(d) for d in data)
        for seq, raw in enumerate(RAW, 1):
            assert b"%d (UID %d FLAGS (\\Recent) INTERNALDATE " % (seq, seq) in flat
            assert b" RFC822.SIZE %d ENVELOPE (" % len(raw) in flat
        assert (
            len(re.findall(rb'INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} [\d:]{8} \+0000"', flat)) == 4
        )
        assert b"{15}Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m" in flat  # 8-bit name: a literal
        typ, data = imap.fetch("1:4", "(BODY.PEEK[] RFC822.HEADER BODY.PEEK[TEXT] BODY.PEEK[1])")
        items = fetch_map(data)
        for seq, raw in enumerate(RAW, 1):
            header, body = raw.split(b"\r\n\r\n", 1)
            assert items[seq][b"BODY[]"] == raw  # exactly the stored bytes
            assert items[seq][b"RFC822.HEADER"] == header + b"\r\n\r\n"
            assert items[seq][b"BODY[TEXT]"] == body
        assert items[2][b"BODY[1]"] == RAW[1].split(b"\r\n\r\n", 1)[1]
        typ, data = imap.fetch("3", "(BODY[1.2]<0.15> RFC822.TEXT)")
        items = fetch_map(data)
        assert items[3][b"BODY[1.2]<0>"] == b"<p>HTML version"
        assert items[3][b"RFC822.TEXT"] == RAW[2].split(b"\r\n\r\n", 1)[1]
        typ, data = imap.fetch("4", "(RFC822)")
        assert fetch_map(data)[4][b"RFC822"] == RAW[3]
        typ, data = imap.fetch("3:4", "(FLAGS)")
        assert all(b"\\Seen" in line for line in data)  # BODY[] and RFC822 set \Seen
        imap.logout()

    await asyncio.to_thread(client)
    seen = [await message_queries.get_by_uid(USER, "INBOX", uid) for uid in (1, 2, 3, 4)]
    assert [bool(m.flags & 1) for m in seen] == [False, False, True, True]


async def test_store_copy_move_and_expunge(rig: Rig) -> None:
    await rig.deliver(*RAW)
    port = await rig.serve()

    def client() -> None:
        imap = connect(port)
        imap.select("INBOX")
        assert imap.store("1", "+FLAGS", "(\\Flagged $Label1)") == (
            "OK",
            [b"1 (FLAGS (\\Flagged \\Recent $Label1))"],
        )
        assert imap.uid("STORE", "2", "+FLAGS.SILENT", "(\\Answered)") == ("OK", [None])
        assert imap.store("1", "-FLAGS", "($Label1)")[0] == "OK"
        typ, data = imap.copy("1:2", "Sent")
        assert typ == "OK" and re.match(rb"\[COPYUID \d+ 1:2 1:2\]", data[0])
        typ, data = imap.uid("MOVE", "3", "Trash")
        assert typ == "OK" and imap.untagged_responses.pop("EXPUNGE") == [b"3"]
        assert imap.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert imap.expunge() == ("OK", [b"1"])
        assert imap.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"  # now UID 4
        assert imap.uid("EXPUNGE", "2")[0] == "OK"  # UID 2 lacks \Deleted: stays
        assert imap.select("INBOX") == ("OK", [b"2"])
        imap.logout()

    await asyncio.to_thread(client)
    inbox = await message_queries.list_page(USER, "INBOX", sort=message_queries.Sort.DATE_ASC)
    assert [m.uid for m in inbox.messages] == [2, 4]
    flags = {m.uid: decode_flags(m.flags, m.keywords) for m in inbox.messages}
    assert flags == {2: ["\\Answered"], 4: ["\\Deleted"]}
    sent = await message_queries.list_page(USER, "Sent")
    assert sorted(m.uid for m in sent.messages) == [1, 2]
    assert await message_queries.raw_bytes(USER, "Sent", 1) == RAW[0]
    assert await message_queries.raw_bytes(USER, "Trash", 1) == RAW[2]


@sqlite_only
async def test_search_keys(rig: Rig) -> None:
    await rig.deliver(*RAW)
    await messages.set_flags(USER, "INBOX", [2], ["\\Seen"], bus=rig.bus)
    port = await rig.serve()

    def client() -> None:
        imap = connect(port)
        imap.select("INBOX")

        def search(*criteria: str) -> bytes:
            typ, data = imap.search(None, *criteria)
            assert typ == "OK", data
            return bytes(data[0])

        assert search("ALL") == b"1 2 3 4"
        assert search("SEEN") == b"2"
        assert search("UNSEEN", "NOT", "FROM", "news") == b"1 4"
        assert search("FROM", "Reports") == b"1"
        assert search("SUBJECT", "lunch") == b"4"
        assert search("TO", "bob@example.test") == b"4"
        assert search("HEADER", "Message-ID", "nested-1") == b"3"
        assert search("BODY", '"HTML version"') == b"3"
        assert search("TEXT", "Carol") == b"4"
        assert search("OR", "FROM", "news", "FROM", "alice") == b"3 4"
        assert search("LARGER", "1000") == b"1"
        assert search("SENTSINCE", "25-Nov-2026") == b"3 4"
        assert search("SINCE", "1-Jan-2020", "BEFORE", "1-Jan-2100") == b"1 2 3 4"
        assert search("2:3") == b"2 3"
        # CHARSET UTF-8 with a literal: the decoded subject and name (RFC 3501 section 6.4.4).
        imap.literal = "Grüße".encode()
        assert imap.search("UTF-8", "SUBJECT")[1] == [b"2"]
        imap.literal = "Müller".encode()
        assert imap.uid("SEARCH", "CHARSET", "UTF-8", "FROM")[1] == [b"2"]
        imap.logout()

    await asyncio.to_thread(client)


@sqlite_only
async def test_append_with_flags_and_date(rig: Rig) -> None:
    port = await rig.serve()
    when = datetime(2026, 11, 1, 8, 30, 5, tzinfo=UTC)

    def client() -> None:
        imap = connect(port)
        typ, data = imap.append(
            "Drafts", "(\\Draft \\Seen)", imaplib.Time2Internaldate(when), RAW[1]
        )
        assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\] APPEND completed", data[0])
        typ, data = imap.append("Nowhere", None, None, b"Subject: x\r\n\r\ny\r\n")
        assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")
        imap.select("Drafts")
        typ, data = imap.fetch("1", "(FLAGS INTERNALDATE)")
        assert data == [
            b'1 (FLAGS (\\Draft \\Recent \\Seen) INTERNALDATE "01-Nov-2026 08:30:05 +0000")'
        ]
        imap.logout()

    await asyncio.to_thread(client)
    stored = await message_queries.get_by_uid(USER, "Drafts", 1)
    assert stored.raw_bytes == RAW[1]
    assert stored.internal_date == when
    assert decode_flags(stored.flags, stored.keywords) == ["\\Seen", "\\Draft"]


@sqlite_only
async def test_folder_commands(rig: Rig) -> None:
    await rig.deliver(RAW[0])
    port = await rig.serve()

    def client() -> None:
        imap = connect(port)
        assert imap.namespace()[1] == [b'(("" "/")) NIL NIL']
        assert imap.xatom("ENABLE", "CONDSTORE")[0] == "OK"
        assert imap.xatom("ID", '("name" "imaplib")')[0] == "OK"
        assert imap.untagged_responses.pop("ID")[0].startswith(b'("name" "MailCue"')
        assert imap.create("Work/Reports")[0] == "OK"
        assert imap.create("Work/Reports")[1] == [b"[ALREADYEXISTS] Mailbox already exists."]
        assert imap.list('""', "Work*")[1] == [
            b'(\\Noselect \\HasChildren) "/" Work',
            b'(\\HasNoChildren) "/" Work/Reports',
        ]
        assert imap.unsubscribe("Work/Reports")[0] == "OK"
        assert b"Work/Reports" not in b" ".join(imap.lsub()[1])
        assert imap.subscribe("Work/Reports")[0] == "OK"
        assert imap.create("Work")[0] == "OK"
        assert imap.rename("Work", "Projects")[0] == "OK"  # children move along
        assert imap.list('""', "Projects*")[1] == [
            b'(\\HasChildren) "/" Projects',
            b'(\\HasNoChildren) "/" Projects/Reports',
        ]
        imap.select("INBOX")
        assert imap.copy("1", "Projects/Reports")[0] == "OK"
        assert imap.status("Projects/Reports", "(MESSAGES UNSEEN UIDNEXT)")[1] == [
            b"Projects/Reports (MESSAGES 1 UNSEEN 1 UIDNEXT 2)"
        ]
        assert imap.delete("Projects/Reports")[0] == "OK"
        assert imap.delete("INBOX")[0] == "NO"
        assert imap.delete("Sent")[1] == [
            b"[CANNOT] 'Sent' is the \\Sent folder and cannot be deleted"
        ]
        assert imap.rename("INBOX", "Old")[0] == "NO"
        assert imap.select("INBOX", readonly=True) == ("OK", [b"1"])
        assert imap.store("1", "+FLAGS", "(\\Seen)")[0] == "NO"
        assert imap.close()[0] == "OK"  # EXAMINE: closes without expunging
        imap.select("INBOX")
        assert imap.unselect()[0] == "OK"
        assert imap.noop()[0] == "OK"
        imap.logout()

    await asyncio.to_thread(client)
    names = [state.name for state in await folders.folder_states(USER)]
    assert names == ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Projects"]


@sqlite_only
async def test_login_rules_starttls_and_imaps(rig: Rig) -> None:
    plain = await rig.serve(allow_plaintext_auth=False)
    imaps = await rig.serve(implicit_tls=True)
    context = rig.client_context()

    def client() -> None:
        imap = imaplib.IMAP4("127.0.0.1", plain, timeout=TIMEOUT)
        assert "LOGINDISABLED" in imap.capabilities and "STARTTLS" in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="LOGIN is disabled"):
            imap.login(USER, PASSWORD)
        imap.starttls(context)
        assert "LOGINDISABLED" not in imap.capabilities
        assert imap.login(USER, PASSWORD)[0] == "OK"
        imap.logout()

        secure = imaplib.IMAP4_SSL("localhost", imaps, ssl_context=context, timeout=TIMEOUT)
        assert "STARTTLS" not in secure.capabilities and "AUTH=PLAIN" in secure.capabilities
        plain_auth = b"\0" + USER.encode() + b"\0" + PASSWORD.encode()
        assert secure.authenticate("PLAIN", lambda _: plain_auth)[0] == "OK"
        assert secure.select("INBOX")[0] == "OK"
        secure.logout()

        guesser = imaplib.IMAP4_SSL("localhost", imaps, ssl_context=context, timeout=TIMEOUT)
        for attempt in range(2):
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                guesser.login(USER, f"wrong {attempt}")
        with pytest.raises(imaplib.IMAP4.error, match="Too many failed logins"):
            guesser.login(USER, "wrong again")  # the third failure ends the connection

    await asyncio.to_thread(client)


async def test_aioimaplib_idle_wakes_on_delivery(rig: Rig) -> None:
    await rig.deliver(RAW[0])
    client = aioimaplib.IMAP4(host="127.0.0.1", port=await rig.serve(), timeout=TIMEOUT)
    await client.wait_hello_from_server()
    assert (await client.login(USER, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    idle = await client.idle_start(timeout=TIMEOUT)
    started = time.perf_counter()
    await rig.deliver(RAW[1])  # from outside the IMAP session, as SMTP would
    pushed = await client.wait_server_push(timeout=1.0)
    assert b"2 EXISTS" in pushed
    assert time.perf_counter() - started < 1.0
    await messages.delete(USER, "INBOX", [1], bus=rig.bus)
    pushed = await client.wait_server_push(timeout=1.0)
    while b"1 EXPUNGE" not in pushed:  # RECENT/FETCH lines may come first
        pushed = await client.wait_server_push(timeout=1.0)
    client.idle_done()
    assert (await asyncio.wait_for(idle, TIMEOUT)).result == "OK"
    assert (await client.logout()).result == "OK"


@sqlite_only
async def test_sessions_see_each_others_changes(rig: Rig) -> None:
    await rig.deliver(RAW[0], RAW[1])
    port = await rig.serve()

    def client() -> None:
        first, second = connect(port), connect(port)
        first.select("INBOX")
        second.select("INBOX")
        first.untagged_responses.clear()
        second.append("INBOX", None, None, RAW[2])
        second.store("1", "+FLAGS", "(\\Flagged)")
        first.noop()
        assert first.untagged_responses.pop("EXISTS") == [b"3"]
        assert b"1 (FLAGS (\\Flagged" in b" ".join(first.untagged_responses.pop("FETCH"))
        second.store("2", "+FLAGS", "(\\Deleted)")
        second.expunge()
        first.noop()
        assert first.untagged_responses.pop("EXPUNGE") == [b"2"]
        first.logout()
        second.logout()

    await asyncio.to_thread(client)


@sqlite_only
async def test_imapclient_flow(rig: Rig) -> None:
    await rig.deliver(*RAW)
    port = await rig.serve(implicit_tls=True)
    context = rig.client_context()

    def client() -> None:
        with IMAPClient("localhost", port=port, ssl=True, ssl_context=context) as imap:
            imap.login(USER, PASSWORD)
            special = {name: flags for flags, _, name in imap.list_folders()}
            assert b"\\Trash" in special["Trash"]
            assert imap.find_special_folder(b"\\Sent") == "Sent"
            info = imap.select_folder("INBOX")
            assert info[b"EXISTS"] == 4 and info[b"UIDNEXT"] == 5
            uids = imap.search(["FROM", "alice@example.test"])
            assert uids == [4]
            data = imap.fetch([1, 3, 4], ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE"])
            assert data[1][b"RFC822.SIZE"] == len(RAW[0])
            attachment = data[1][b"BODYSTRUCTURE"][0][1]
            assert attachment[:2] == (b"application", b"pdf") and attachment[6] == 456
            assert data[3][b"BODYSTRUCTURE"].is_multipart
            assert data[3][b"BODYSTRUCTURE"][0][0].is_multipart  # alternative inside mixed
            envelope = data[4][b"ENVELOPE"]
            assert envelope.subject == b"Fwd: Lunch?" and envelope.from_[0].mailbox == b"alice"
            forwarded = data[4][b"BODYSTRUCTURE"][0][1]
            assert forwarded[:2] == (b"message", b"rfc822") and forwarded[7][1] == b"Lunch?"
            imap.add_flags([2], [b"\\Flagged"])
            assert imap.get_flags([2])[2] == (b"\\Flagged", b"\\Recent")
            imap.move([1], "Trash")
            assert imap.folder_status("Trash", [b"MESSAGES"])[b"MESSAGES"] == 1
            body = imap.fetch([2], ["BODY.PEEK[]"])[2][b"BODY[]"]
            assert body == RAW[1]

    await asyncio.to_thread(client)


@sqlite_only
async def test_mbsync_copies_500_messages_exactly(rig: Rig, tmp_path: Path) -> None:
    """mbsync pulls a 500-message INBOX into a Maildir; every file is what was stored.

    Two things in those files are mbsync's own doing, not the server's, and
    are accounted for: it inserts an ``X-TUID`` header (isync's marker for
    finding a message again after an interruption), and it writes Maildir
    files with LF line endings (it converts IMAP's CRLF). Half the messages
    are stored with LF endings, so for those every other byte is compared as is.
    """
    if shutil.which("mbsync") is None:
        pytest.skip("mbsync is not installed (Debian package isync)")
    raws = []
    for number in range(500):
        raw = RAW[number % 4].replace(b"Message-ID: <", b"Message-ID: <n%d-" % number, 1)
        if number % 7 == 0:
            raw += base64.b64encode(bytes([number % 256]) * 3000) + b"\r\n"
        raws.append(raw.replace(b"\r\n", b"\n") if number % 2 else raw)
    stored = dict(zip(await rig.deliver(*raws), raws, strict=True))
    port = await rig.serve(implicit_tls=True)
    (tmp_path / "ca.pem").write_bytes(rig.tls.ca_pem())
    maildir = tmp_path / "mail"
    maildir.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"IMAPAccount test\nHost localhost\nPort {port}\nUser {USER}\n"
        f'Pass "{PASSWORD}"\nSSLType IMAPS\nCertificateFile {tmp_path / "ca.pem"}\n\n'
        "IMAPStore remote\nAccount test\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        "Channel inbox\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
        "Sync Pull\nSyncState *\n"
    )
    process = await asyncio.create_subprocess_exec(
        "mbsync",
        "-c",
        str(config),
        "inbox",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode(errors="replace")
    inbox = maildir / "INBOX"
    files = [*(inbox / "new").iterdir(), *(inbox / "cur").iterdir()]
    assert len(files) == 500
    for path in files:
        found = re.search(r",U=(\d+)", path.name)
        assert found is not None, path.name
        data = re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", path.read_bytes(), count=1)
        assert data == stored[int(found.group(1))].replace(b"\r\n", b"\n"), path.name
