"""SMTP into a real ``mailcue serve`` process, driven by the clients users run.

Every test starts its own node (port 0 everywhere) and, where it checks what
was stored, reads the database directly after SIGTERM. Concurrent senders
must get distinct, increasing UIDs on SQLite and PostgreSQL; swaks (plain, and
STARTTLS + AUTH on submission) must have its bytes stored exactly; fetchmail
must get back over POP3 + STLS exactly what was stored and empty the INBOX;
oversized and bare-LF (smuggling) DATA must be refused with nothing stored.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailcue_server.store.db import Database
from mailcue_server.store.mail_models import INBOX, Folder, Mailbox, Message
from processes import ServeProcess, cli_env, mailcue
from services import fresh_postgres_database

PASSWORD = "node-test-password"
CONCURRENT_SENDERS = 8
MESSAGES_PER_SENDER = 250
SMTP_TIMEOUT = 60.0
FETCHMAIL_TIMEOUT = 60.0
SMALL_LIMIT = 64 * 1024
# What the server puts on top: Return-Path (RFC 5321 section 4.4), then Received.
TRACE = re.compile(
    rb"\AReturn-Path: <(?P<path>[^<>\r\n]*)>\r\n"
    rb"(?P<received>Received: from [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)"
)
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)\r$", re.MULTILINE)

needs_swaks = pytest.mark.skipif(
    shutil.which("swaks") is None, reason="swaks is not installed (apt-get install swaks)"
)
needs_fetchmail = pytest.mark.skipif(
    shutil.which("fetchmail") is None,
    reason="fetchmail is not installed (apt-get install fetchmail)",
)


@dataclass(frozen=True)
class Inbox:
    """What the database holds for one INBOX, rows in insert (primary key) order."""

    rows: list[tuple[int, int, bytes]]
    uid_next: int
    message_count: int

    @property
    def uids(self) -> list[int]:
        return [uid for _, uid, _ in self.rows]

    @property
    def raws(self) -> list[bytes]:
        return [raw for _, _, raw in self.rows]


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite://{(data_dir / 'mailcue.db').resolve()}"


@asynccontextmanager
async def node_database(engine: str, data_dir: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The URL the test reads afterwards, and the variables that point the node at it."""
    if engine == "sqlite":
        yield sqlite_url(data_dir), {}
        return
    async with fresh_postgres_database() as url:
        yield url, {"MAILCUE_DATABASE_URL": url}


async def read_inbox(url: str, address: str) -> Inbox | None:
    """Open the node's database (the node has stopped) and read one INBOX."""
    db = Database(url)
    await db.open()
    try:
        folder = await Folder.get_or_none(mailbox__address=address, name=INBOX)
        if folder is None:
            return None
        rows = (
            await Message.filter(folder_id=folder.id)
            .order_by("id")
            .values_list("id", "uid", "raw_bytes")
        )
        return Inbox(
            rows=[(int(pk), int(uid), bytes(raw)) for pk, uid, raw in rows],
            uid_next=folder.uid_next,
            message_count=folder.message_count,
        )
    finally:
        await db.close()


async def count_messages(url: str) -> tuple[int, list[str]]:
    """Every stored message in every folder, and every mailbox address."""
    db = Database(url)
    await db.open()
    try:
        total = await Message.all().count()
        addresses = await Mailbox.all().values_list("address", flat=True)
        return total, sorted(str(a) for a in addresses)
    finally:
        await db.close()


def create_mailbox(env: dict[str, str], cwd: Path, address: str) -> None:
    done = mailcue(
        "create-mailbox", "--address", address, "--password", PASSWORD, env=env, cwd=cwd
    )
    assert done.returncode == 0, done.stderr


def split_received(stored: bytes) -> tuple[bytes, bytes]:
    """Our ``Received`` header (all its folded lines) and the bytes the client sent."""
    match = TRACE.match(stored)
    assert match is not None, stored[:200]
    return match.group("received"), stored[match.end() :]


def return_path(stored: bytes) -> bytes:
    """The address in the ``Return-Path`` the server put first."""
    match = TRACE.match(stored)
    assert match is not None, stored[:200]
    return match.group("path")


def message_id(raw: bytes) -> bytes:
    match = MESSAGE_ID.search(raw)
    assert match is not None, raw[:200]
    return match.group(1)


def stop(node: ServeProcess) -> None:
    assert node.terminate() == 0, node.output


def mail(sender: int, n: int, to: str) -> bytes:
    return (
        f"From: Sender {sender} <s{sender}@example.test>\r\n"
        f"To: {to}\r\n"
        f"Subject: concurrent {sender}-{n}\r\n"
        f"Message-ID: <c{sender}-{n}@example.test>\r\n"
        f"\r\n"
        f"Body of {sender}-{n}.\r\n.a line that starts with a dot\r\n"
    ).encode()


def send_concurrently(port: int, to: str) -> list[bytes]:
    """Deliver from several smtplib connections at once; returns what got a 250."""
    acknowledged: list[bytes] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(CONCURRENT_SENDERS)

    def send(sender: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=SMTP_TIMEOUT) as client:
                start.wait(SMTP_TIMEOUT)
                for n in range(MESSAGES_PER_SENDER):
                    raw = mail(sender, n, to)
                    client.sendmail(f"s{sender}@example.test", [to], raw)
                    with lock:  # sendmail returned, so the server answered 250
                        acknowledged.append(raw)
        except BaseException as exc:
            start.abort()
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(CONCURRENT_SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return acknowledged


@pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_concurrent_smtp_deliveries_get_distinct_increasing_uids(
    tmp_path: Path, engine: str
) -> None:
    data_dir = tmp_path / "data"
    to = "uids@mailcue.local"
    async with node_database(engine, data_dir) as (url, variables):
        with ServeProcess(cli_env(data_dir, **variables), tmp_path) as node:
            node.wait_listening()
            acknowledged = send_concurrently(node.listener_port("smtp"), to)
            stop(node)
        inbox = await read_inbox(url, to)

    total = CONCURRENT_SENDERS * MESSAGES_PER_SENDER
    assert len(acknowledged) == total
    assert inbox is not None
    assert len(inbox.rows) == total
    assert len(set(inbox.uids)) == total
    assert all(a < b for a, b in itertools.pairwise(inbox.uids)), "UIDs out of insert order"
    assert inbox.uid_next > max(inbox.uids)
    assert inbox.message_count == total
    by_id = {message_id(raw): raw for raw in inbox.raws}
    for raw in acknowledged:
        stored = by_id[message_id(raw)]
        assert split_received(stored)[1] == raw
        sender = re.search(rb"<(s\d@example\.test)>", raw)
        assert sender is not None and return_path(stored) == sender.group(1)


SWAKS_MESSAGE = (
    b"From: Swaks Sender <sender@example.test>\r\n"
    b"To: Reader <reader@mailcue.local>\r\n"
    b"Subject: from swaks\r\n"
    b"Message-ID: <swaks@example.test>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"First line.\r\n"
    b".a leading dot\r\n"
    b"..two leading dots\r\n"
    b".\r\n"
    b"after a lone dot, and 8-bit: Gr\xc3\xbc\xc3\x9fe\r\n"
    b"\r\n"
    b"last line, no line break after it"
)
# swaks ends DATA with CRLF "." CRLF; the first CRLF belongs to the message
# (RFC 5321 section 4.1.1.4), so this is the content it sends for the file above.
SWAKS_SENT = SWAKS_MESSAGE + b"\r\n"


def swaks(port: int, message: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """swaks to our port, reading the whole DATA content from ``message``."""
    server = ["--server", "127.0.0.1", "--port", str(port), "--helo", "swaks.example.test"]
    return subprocess.run(
        ["swaks", *server, "--data", f"@{message}", *args],
        capture_output=True,
        text=True,
        timeout=SMTP_TIMEOUT,
        check=False,
    )


@needs_swaks
async def test_swaks_plain_and_starttls_auth_are_stored_exactly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = cli_env(data_dir)
    author = "author@mailcue.local"
    create_mailbox(env, tmp_path, author)
    message = tmp_path / "message.eml"
    message.write_bytes(SWAKS_MESSAGE)
    with ServeProcess(env, tmp_path) as node:
        node.wait_listening()
        envelope = ["--from", "sender@example.test", "--to", "plain@mailcue.local"]
        plain = swaks(node.listener_port("smtp"), message, *envelope)
        assert plain.returncode == 0, plain.stdout + plain.stderr
        tls = ["--tls", "--tls-verify", "--tls-ca-path", str(data_dir / "tls" / "ca.pem")]
        auth = ["--auth", "PLAIN", "--auth-user", author, "--auth-password", PASSWORD]
        envelope = ["--from", author, "--to", "secure@mailcue.local"]
        secure = swaks(node.listener_port("submission"), message, *tls, *auth, *envelope)
        assert secure.returncode == 0, secure.stdout + secure.stderr
        assert "235 " in secure.stdout and "TLS started" in secure.stdout
        stop(node)

    url = sqlite_url(data_dir)
    for address, protocol in (("plain", b"ESMTP"), ("secure", b"ESMTPSA")):
        inbox = await read_inbox(url, f"{address}@mailcue.local")
        assert inbox is not None and len(inbox.raws) == 1, address
        received, rest = split_received(inbox.raws[0])
        assert rest == SWAKS_SENT
        sender = b"sender@example.test" if address == "plain" else author.encode()
        assert return_path(inbox.raws[0]) == sender
        assert b"from swaks.example.test ([127.0.0.1])" in received
        assert b" with " + protocol + b" id " in received


FETCHMAIL_MESSAGES = (
    b"From: a@example.test\r\nTo: pop@mailcue.local\r\nSubject: plain\r\n\r\nHello.\r\n",
    b"From: a@example.test\r\nTo: pop@mailcue.local\r\nSubject: dots\r\n\r\n"
    b".leading\r\n..double\r\n.\r\nend\r\n",
    b"From: a@example.test\r\nTo: pop@mailcue.local\r\nSubject: eight bit\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\nFrom the first column\r\n   \r\n\r\n",
    b"From: a@example.test\r\nTo: pop@mailcue.local\r\nSubject: long\r\n\r\n"
    + b"x" * 990
    + b"\r\n",
)


def stored_inbox_raws(data_dir: Path, address: str) -> list[bytes]:
    """Read the running node's SQLite file read-only (WAL lets a reader in)."""
    path = (data_dir / "mailcue.db").resolve()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT m.raw FROM messages m JOIN folders f ON f.id = m.folder_id "
            "JOIN mailboxes b ON b.id = f.mailbox_id "
            "WHERE b.address = ? AND f.name = ? ORDER BY m.id",
            (address, INBOX),
        ).fetchall()
    return [bytes(raw) for (raw,) in rows]


def fetchmail_rc(tmp_path: Path, port: int, address: str, ca: Path, out: Path) -> Path:
    """A run-control file: STLS required, our CA trusted, each message to its own file."""
    deliver = tmp_path / "deliver.sh"
    deliver.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {out}/msg.XXXXXX)"\n')
    deliver.chmod(0o700)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        # No Received header of fetchmail's own: the files must be the stored bytes.
        "set invisible\n"
        f"poll 127.0.0.1 service {port} protocol POP3 auth password timeout 30\n"
        f'  user "{address}" there with password "{PASSWORD}"\n'
        # sslproto forces STLS; fetchmail matches DNS names only, not our IP SAN.
        f'  sslproto "tls1.2+" sslcertck sslcertfile "{ca}"'
        ' sslcommonname "mail.mailcue.local"\n'
        f'  fetchall no rewrite no stripcr mda "{deliver}"\n'
    )
    rc.chmod(0o600)
    return rc


@needs_fetchmail
async def test_fetchmail_retrieves_exact_bytes_and_empties_the_inbox(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = cli_env(data_dir)
    address = "pop@mailcue.local"
    create_mailbox(env, tmp_path, address)
    out = tmp_path / "fetched"
    out.mkdir()
    home = tmp_path / "fetchmail-home"
    home.mkdir(mode=0o700)
    with ServeProcess(env, tmp_path) as node:
        node.wait_listening()
        with smtplib.SMTP("127.0.0.1", node.listener_port("smtp"), timeout=SMTP_TIMEOUT) as smtp:
            for raw in FETCHMAIL_MESSAGES:
                smtp.sendmail("a@example.test", [address], raw)
        stored = stored_inbox_raws(data_dir, address)
        assert [split_received(raw)[1] for raw in stored] == list(FETCHMAIL_MESSAGES)

        rc = fetchmail_rc(
            tmp_path, node.listener_port("pop3"), address, data_dir / "tls" / "ca.pem", out
        )
        fetched = subprocess.run(
            ["fetchmail", "--verbose", "--fetchmailrc", str(rc)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=FETCHMAIL_TIMEOUT,
            check=False,
        )
        log = fetched.stdout + fetched.stderr
        assert fetched.returncode == 0, log
        assert "POP3> STLS" in log and "POP3> QUIT" in log, log
        assert stored_inbox_raws(data_dir, address) == []
        stop(node)

    retrieved = sorted(path.read_bytes() for path in out.iterdir())
    assert retrieved == sorted(stored)
    inbox = await read_inbox(sqlite_url(data_dir), address)
    assert inbox is not None and inbox.rows == [] and inbox.message_count == 0


def big_mail(to: str) -> bytes:
    line = b"y" * 76 + b"\r\n"
    head = f"From: a@example.test\r\nTo: {to}\r\nSubject: too big\r\n\r\n".encode()
    return head + line * (2 * SMALL_LIMIT // len(line))


async def test_oversized_message_is_552_and_not_stored(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = cli_env(data_dir, MAILCUE_MAX_MESSAGE_SIZE=str(SMALL_LIMIT))
    big_to, small_to = "big@mailcue.local", "small@mailcue.local"
    with ServeProcess(env, tmp_path) as node:
        node.wait_listening()
        with smtplib.SMTP("127.0.0.1", node.listener_port("smtp"), timeout=SMTP_TIMEOUT) as smtp:
            smtp.ehlo()
            assert smtp.esmtp_features["size"] == str(SMALL_LIMIT)
            # smtplib declares SIZE= (RFC 1870), so the refusal comes at MAIL ...
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                smtp.sendmail("a@example.test", [big_to], big_mail(big_to))
            assert refused.value.smtp_code == 552
            # ... and without SIZE= it comes after the data.
            assert smtp.mail("a@example.test")[0] == 250
            assert smtp.rcpt(big_to)[0] == 250
            code, reply = smtp.data(big_mail(big_to))
            assert (code, reply[:5]) == (552, b"5.3.4")
            # Its twin with bare LF line ends: too big all the same, not a "line too long".
            assert smtp.mail("a@example.test")[0] == 250
            assert smtp.rcpt(big_to)[0] == 250
            code, reply = smtp.data(big_mail(big_to).replace(b"\r\n", b"\n"))
            assert (code, reply[:5]) == (552, b"5.3.4")
            smtp.sendmail("a@example.test", [small_to], mail(0, 0, small_to))
        stop(node)

    total, addresses = await count_messages(sqlite_url(data_dir))
    assert total == 1
    assert big_to not in addresses
    # The one message received is in the log, at the default level (INFO).
    inbox = await read_inbox(sqlite_url(data_dir), small_to)
    assert inbox is not None
    [(_, uid, raw)] = inbox.rows
    line = f"received {uid} for <{small_to}> from <a@example.test>, {len(raw)} bytes"
    assert f"INFO    mailcue_server.store.ingest: {line}\n" in node.output


class RawSmtp:
    """A socket and a reply reader: bytes go out exactly as written."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SMTP_TIMEOUT)
        self.reader = self.sock.makefile("rb")

    def reply(self) -> int:
        """Read one (possibly multi-line) reply; return its code."""
        while True:
            line = self.reader.readline()
            assert line.endswith(b"\r\n"), f"connection closed mid-reply: {line!r}"
            if line[3:4] != b"-":
                return int(line[:3])

    def send(self, data: bytes) -> int:
        self.sock.sendall(data)
        return self.reply()

    def command(self, line: bytes) -> int:
        return self.send(line + b"\r\n")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


SMUGGLED = (
    b"MAIL FROM:<attacker@example.test>\r\nRCPT TO:<smuggled@mailcue.local>\r\n"
    b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
)
# The end-of-data look-alikes of https://smtpsmuggling.com (CVE-2023-51764 and kin).
FAKE_ENDS = (b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r")


async def test_bare_lf_smuggling_is_rejected_and_not_stored(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    guard = "guard@mailcue.local"
    with ServeProcess(cli_env(data_dir), tmp_path) as node:
        node.wait_listening()
        smtp = RawSmtp(node.listener_port("smtp"))
        try:
            assert smtp.reply() == 220
            assert smtp.command(b"EHLO attacker.example.test") == 250
            for fake_end in FAKE_ENDS:
                assert smtp.command(b"MAIL FROM:<attacker@example.test>") == 250
                assert smtp.command(f"RCPT TO:<{guard}>".encode()) == 250
                assert smtp.command(b"DATA") == 354
                payload = b"Subject: cover\r\n\r\ncover" + fake_end + SMUGGLED + b".\r\n"
                # One reply for the whole payload: nothing after the fake end ran as a command.
                assert smtp.send(payload) == 550, fake_end
            assert smtp.command(b"MAIL FROM:<honest@example.test>") == 250
            assert smtp.command(f"RCPT TO:<{guard}>".encode()) == 250
            assert smtp.command(b"DATA") == 354
            assert smtp.send(b"Subject: honest\r\n\r\nhonest\r\n.\r\n") == 250
            assert smtp.command(b"QUIT") == 221
        finally:
            smtp.close()
        stop(node)

    url = sqlite_url(data_dir)
    total, addresses = await count_messages(url)
    assert (total, addresses) == (1, [guard])
    inbox = await read_inbox(url, guard)
    assert inbox is not None
    assert split_received(inbox.raws[0])[1] == b"Subject: honest\r\n\r\nhonest\r\n"
