"""POST /api/v1/emails/send and the GraphQL sendEmail mutation, on a real node.

Every message goes through the node's own submission listener, so the
assertions read what recipients really got: the stored bytes of their INBOX
copy, the sender's Sent folder over IMAP, and the events on the bus.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import imaplib
import secrets
import socket
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart
from typing import Any

import httpx
import pytest
import pytest_asyncio
from mailcue import AsyncMailcue

from accounts import PASSWORD, Account, admin, new_api_key, new_user
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import EventType, channel_for
from mailcue_server.store import folder_counts, mailboxes, message_queries

SEND = "/api/v1/emails/send"


def _address(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}@send.test"


async def _sender(
    http: httpx.AsyncClient, server: MailcueServer, display_name: str = ""
) -> tuple[Account, str]:
    """A fresh user who owns one fresh mailbox (with an IMAP password)."""
    assert server.bus is not None
    owner = await new_user(http)
    address = _address("from")
    await mailboxes.create_mailbox(
        address,
        bus=server.bus,
        owner_id=owner.user["id"],
        display_name=display_name,
        password=PASSWORD,
    )
    return owner, address


Sender = tuple[Account, str]


@pytest_asyncio.fixture(scope="module")
async def alice(server: MailcueServer) -> Sender:
    """One user and mailbox shared by the tests that need no fresh sender (logins are slow)."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await _sender(client, server)


def _body(sender: str, *to: str, **fields: Any) -> dict[str, Any]:
    return {"from_address": sender, "to_addresses": list(to), "subject": "Hello", **fields}


async def _copies(address: str, folder: str = "INBOX") -> list[bytes]:
    """The raw bytes of every message in a folder; none when the mailbox does not exist."""
    if await mailboxes.find_mailbox(address) is None:
        return []
    page = await message_queries.list_page(address, folder)
    return [await message_queries.raw_bytes(address, folder, m.uid) for m in page.messages]


async def _sent_count(address: str) -> int:
    return (await folder_counts.folder_status(address, "Sent")).exists


def _parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def _received(address: str) -> EmailMessage:
    """The one message in ``address``'s INBOX."""
    [raw] = await _copies(address)
    return _parse(raw)


def _text(part: MIMEPart | None) -> str:
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


async def _send(http: httpx.AsyncClient, owner: Account, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(SEND, headers=owner.headers, json=body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- what recipients get ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "text", "html"),
    [
        ({"body": "Hi there\nSecond line"}, "Hi there\nSecond line\n", None),
        ({"body": "<p>Hi</p>", "body_type": "html"}, None, "<p>Hi</p>\n"),
        (
            {"body": "<p>Hi</p>", "body_type": "html", "text_body": "Hi"},
            "Hi\n",
            "<p>Hi</p>\n",
        ),
    ],
    ids=["text", "html", "both"],
)
async def test_bodies_reach_the_recipient(
    http: httpx.AsyncClient,
    alice: Sender,
    fields: dict[str, str],
    text: str | None,
    html: str | None,
) -> None:
    owner, sender = alice
    rcpt = _address("to")
    answer = await _send(http, owner, _body(sender, rcpt, **fields))
    assert answer["message"] == "Email accepted for delivery"
    assert answer["message_id"].startswith("<") and answer["message_id"].endswith(">")
    got = await _received(rcpt)
    assert got["Message-ID"] == answer["message_id"]
    assert got["Subject"] == "Hello" and got["To"] == rcpt
    if text and html:
        assert got.get_content_type() == "multipart/alternative"
    plain, rich = got.get_body(("plain",)), got.get_body(("html",))
    assert (_text(plain) if plain else None) == text
    assert (_text(rich) if rich else None) == html


async def test_attachments_arrive_byte_for_byte(http: httpx.AsyncClient, alice: Sender) -> None:
    owner, sender = alice
    rcpt = _address("to")
    binary = bytes(range(256)) * 40 + b"\r\n\x00end"
    notes = "r\u00e9sum\u00e9 notes\nline two\n".encode()
    attachments: list[dict[str, Any]] = [
        {"filename": "blob.bin", "content_type": "application/octet-stream", "data": binary},
        {"filename": "notes.txt", "content_type": "text/plain", "data": notes},
    ]
    body = _body(
        sender,
        rcpt,
        body="See attached",
        attachments=[{**a, "data": base64.b64encode(a["data"]).decode()} for a in attachments],
    )
    await _send(http, owner, body)
    got = await _received(rcpt)
    assert got.get_content_type() == "multipart/mixed"
    parts = list(got.iter_attachments())
    assert [p.get_filename() for p in parts] == ["blob.bin", "notes.txt"]
    assert [p.get_payload(decode=True) for p in parts] == [binary, notes]
    assert _text(got.get_body(("plain",))) == "See attached\n"


async def test_to_cc_and_bcc_all_receive_and_bcc_stays_hidden(
    http: httpx.AsyncClient, alice: Sender
) -> None:
    owner, sender = alice
    to, cc, bcc = _address("to"), _address("cc"), _address("bcc")
    body = _body(sender, to, cc_addresses=[cc], bcc_addresses=[bcc], body="all of you")
    answer = await _send(http, owner, body)
    for address in (to, cc, bcc):
        [raw] = await _copies(address)
        got = _parse(raw)
        assert got["Message-ID"] == answer["message_id"]
        assert got["To"] == to and got["Cc"] == cc
        header = raw.split(b"\r\n\r\n", 1)[0]
        assert got["Bcc"] is None and bcc.encode() not in header


async def test_sent_folder_keeps_a_read_copy(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    owner, sender = await _sender(http, server)
    rcpt = _address("to")
    answer = await _send(http, owner, _body(sender, rcpt, body="keep me"))

    def sent_over_imap() -> tuple[bytes, bytes]:
        imap = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        try:
            imap.login(sender, PASSWORD)
            imap.select("Sent", readonly=True)
            _, flags = imap.fetch("1", "(FLAGS)")
            _, header = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            return flags[0], header[0][1]  # type: ignore[index,return-value]
        finally:
            imap.logout()

    flags, header = await asyncio.to_thread(sent_over_imap)
    assert b"\\Seen" in flags
    assert answer["message_id"].encode() in header
    assert await _copies(sender) == []  # the sender's INBOX is not a recipient


async def test_reply_and_list_headers_reach_the_recipient(
    http: httpx.AsyncClient, alice: Sender
) -> None:
    owner, sender = alice
    rcpt = _address("to")
    body = _body(
        sender,
        rcpt,
        body="Thread reply",
        reply_to="replies@send.test",
        in_reply_to="<first@send.test>",
        references=["<root@send.test>", "<first@send.test>"],
        list_unsubscribe="<https://send.test/unsub?u=1>, <mailto:unsub@send.test>",
        list_unsubscribe_post="List-Unsubscribe=One-Click",
        bulk=True,
        headers={"X-Campaign": "spring-42"},
    )
    await _send(http, owner, body)
    [raw] = await _copies(rcpt)
    for line in (
        b"Reply-To: replies@send.test",
        b"In-Reply-To: <first@send.test>",
        b"References: <root@send.test> <first@send.test>",
        b"List-Unsubscribe: <https://send.test/unsub?u=1>, <mailto:unsub@send.test>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"Precedence: bulk",
        b"X-Campaign: spring-42",
    ):
        assert b"\r\n" + line + b"\r\n" in raw, line


async def test_display_name_falls_back_to_the_mailbox(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    owner, sender = await _sender(http, server, display_name="Ada Lovelace")
    first, second = _address("to"), _address("to")
    await _send(http, owner, _body(sender, first, body="a"))
    await _send(http, owner, _body(sender, second, body="b", from_name="Support Desk"))
    assert (await _received(first))["From"] == f"Ada Lovelace <{sender}>"
    assert (await _received(second))["From"] == f"Support Desk <{sender}>"


async def test_email_sent_is_published_on_the_senders_channel(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    assert server.bus is not None
    owner, sender = await _sender(http, server)
    rcpt = _address("to")
    async with server.bus.subscribe([channel_for(sender)]) as events:
        answer = await _send(http, owner, _body(sender, rcpt, body="announce me"))
        async with asyncio.timeout(5):
            async for event in events:
                if event.type == EventType.EMAIL_SENT:
                    break
    assert event.mailbox == sender and event.folder == "Sent" and event.uid is not None
    assert event.data == {"message_id": answer["message_id"], "to": [rcpt], "subject": "Hello"}


async def test_admin_sends_from_an_address_without_a_mailbox(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    boss = await admin(http)
    sender, rcpt = _address("noreply"), _address("to")
    await _send(http, boss, _body(sender, rcpt, body="system notice"))
    assert (await _received(rcpt))["From"] == sender
    assert await mailboxes.find_mailbox(sender) is None  # no Sent copy, no mailbox made


# --- who may send --------------------------------------------------------------------------


async def test_sending_from_someone_elses_mailbox_is_not_found(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    # 404, not 403: the access rule answers "not yours" like "no such mailbox",
    # so a user cannot probe which addresses exist (resolvers/access.py).
    _, theirs = await _sender(http, server)
    intruder = await new_user(http)
    rcpt = _address("to")
    response = await http.post(SEND, headers=intruder.headers, json=_body(theirs, rcpt))
    assert response.status_code == 404, response.text
    unknown = await http.post(SEND, headers=intruder.headers, json=_body(_address("x"), rcpt))
    assert unknown.status_code == 404
    assert await _copies(rcpt) == []


async def test_api_keys_need_email_send_and_the_mailbox_on_their_list(
    http: httpx.AsyncClient, alice: Sender
) -> None:
    owner, sender = alice
    rcpt = _address("to")
    read_only = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    response = await http.post(SEND, headers={"X-API-Key": read_only}, json=_body(sender, rcpt))
    assert response.status_code == 403
    assert "email:send" in response.json()["detail"]

    elsewhere = await new_api_key(
        http, owner, scopes=["email:send"], allowed_mailboxes=["other@send.test"]
    )
    response = await http.post(
        SEND, headers={"X-API-Key": elsewhere["key"]}, json=_body(sender, rcpt)
    )
    assert response.status_code == 404
    assert await _copies(rcpt) == []

    sender_key = (await new_api_key(http, owner, scopes=["email:send"]))["key"]
    response = await http.post(SEND, headers={"X-API-Key": sender_key}, json=_body(sender, rcpt))
    assert response.status_code == 202, response.text
    assert len(await _copies(rcpt)) == 1


async def test_anonymous_callers_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(SEND, json=_body("a@send.test", "b@send.test"))
    assert response.status_code == 401


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"sign": True}, 400, "GPG"),
        ({"encrypt": True}, 400, "GPG"),
        (
            {"attachments": [{"filename": "a.bin", "content_type": "x/y", "data": "no*base64"}]},
            400,
            "a.bin",
        ),
        ({"to_addresses": ["not an address"]}, 400, "to"),
        ({"cc_addresses": ["@nowhere"]}, 400, "cc"),
        ({"to_addresses": []}, 400, "recipient"),
        ({"body_type": "markdown"}, 400, "body_type"),
        ({"subject": "Hi\r\nBcc: victim@send.test"}, 400, "subject"),
        ({"headers": {"Bcc": "victim@send.test"}}, 400, "Bcc"),
        ({"list_unsubscribe_post": "yes please"}, 400, "One-Click"),
        ({"to_addresses": "single@send.test"}, 422, "to_addresses"),
        ({"sign": "maybe"}, 422, "sign"),
        ({"attachments": [{"filename": "a.txt"}]}, 422, "content_type"),
        ({"headers": ["X-A: b"]}, 422, "headers"),
    ],
    ids=lambda value: str(value)[:40],
)
async def test_bad_input_is_refused_and_nothing_is_delivered(
    http: httpx.AsyncClient,
    alice: Sender,
    fields: dict[str, Any],
    status: int,
    says: str,
) -> None:
    owner, sender = alice
    rcpt = _address("to")
    kept = await _sent_count(sender)
    body = {**_body(sender, rcpt, body="never sent"), **fields}
    response = await http.post(SEND, headers=owner.headers, json=body)
    assert response.status_code == status, response.text
    assert says in response.text
    assert await _copies(rcpt) == []
    assert await _sent_count(sender) == kept


async def test_a_missing_sender_field_is_422(http: httpx.AsyncClient, alice: Sender) -> None:
    owner, _ = alice
    response = await http.post(SEND, headers=owner.headers, json={"to_addresses": ["a@b.test"]})
    assert response.status_code == 422


# --- when the mail server fails -------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_submission_failures_are_502_not_500(
    http: httpx.AsyncClient, server: MailcueServer, alice: Sender
) -> None:
    assert server.services is not None and server.services.submission is not None
    owner, sender = alice
    rcpt = _address("to")
    kept = await _sent_count(sender)
    real = server.services.submission
    try:
        server.services.submission = dataclasses.replace(real, port=_closed_port())
        down = await http.post(SEND, headers=owner.headers, json=_body(sender, rcpt))
        server.services.submission = dataclasses.replace(real, password="wrong")
        refused = await http.post(SEND, headers=owner.headers, json=_body(sender, rcpt))
    finally:
        server.services.submission = real
    assert down.status_code == 502 and "could not be reached" in down.json()["detail"]
    assert refused.status_code == 502 and "535" in refused.json()["detail"]
    assert await _copies(rcpt) == []
    assert await _sent_count(sender) == kept


# --- the other clients ----------------------------------------------------------------------


async def test_the_official_sdk_sends_unchanged(http: httpx.AsyncClient, alice: Sender) -> None:
    owner, sender = alice
    to, bcc = _address("to"), _address("bcc")
    key = (await new_api_key(http, owner, scopes=["email:send"]))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        result = await client.emails.send(
            from_=sender,
            from_name="Acme Support",
            to=[to],
            bcc=[bcc],
            subject="Welcome",
            html="<h1>Hi</h1>",
            reply_to="help@send.test",
            headers={"X-Tenant": "acme"},
            attachments=[{"filename": "hello.txt", "content": b"hello"}],
        )
    assert result.message_id is not None and result.message_id.startswith("<")
    for address in (to, bcc):
        got = await _received(address)
        assert got["Message-ID"] == result.message_id
        assert got["From"] == f"Acme Support <{sender}>"
        assert got["X-Tenant"] == "acme" and got["Reply-To"] == "help@send.test"
        [attached] = list(got.iter_attachments())
        assert attached.get_payload(decode=True) == b"hello"


SEND_MUTATION = """
mutation Send($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on SentEmail { message messageId status }
    ... on OperationError { code message }
  }
}
"""


async def test_graphql_send_email_mutation(http: httpx.AsyncClient, alice: Sender) -> None:
    owner, sender = alice
    rcpt = _address("to")
    variables: dict[str, dict[str, Any]] = {
        "input": {
            "fromAddress": sender,
            "toAddresses": [rcpt],
            "subject": "Over GraphQL",
            "body": "<b>hi</b>",
            "bodyType": "html",
            "textBody": "hi",
            "headers": {"X-Via": "graphql"},
        }
    }
    response = await http.post(
        "/graphql", headers=owner.headers, json={"query": SEND_MUTATION, "variables": variables}
    )
    assert response.status_code == 200, response.text
    sent = response.json()["data"]["sendEmail"]
    assert sent["__typename"] == "SentEmail" and sent["status"] == "accepted"
    got = await _received(rcpt)
    assert got["Message-ID"] == sent["messageId"] and got["X-Via"] == "graphql"
    assert got.get_content_type() == "multipart/alternative"

    variables["input"]["sign"] = True
    response = await http.post(
        "/graphql", headers=owner.headers, json={"query": SEND_MUTATION, "variables": variables}
    )
    refused = response.json()["data"]["sendEmail"]
    assert refused["__typename"] == "OperationError" and refused["code"] == "INVALID"
    assert len(await _copies(rcpt)) == 1
