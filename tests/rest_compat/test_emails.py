"""Emails over REST and GraphQL against a real node: SMTP in, HTTP and IMAP out."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import secrets
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import pytest

from accounts import Account, admin, graphql, new_api_key, new_user
from live_events import sse_stream
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import EventType, channel_for

PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 3 + b"\n%%EOF\n"


def unique(prefix: str = "box") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.test"


async def new_mailbox(
    http: httpx.AsyncClient, owner: Account, password: str = "mailbox-pass-1"
) -> str:
    local = f"m{secrets.token_hex(4)}"
    response = await http.post(
        "/api/v1/mailboxes",
        headers=owner.headers,
        json={"username": local, "password": password, "domain": "example.test"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["address"])


async def smtp_send(server: MailcueServer, message: EmailMessage | bytes, to: list[str]) -> None:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    await aiosmtplib.send(
        raw,
        sender="sender@example.org",
        recipients=to,
        hostname="127.0.0.1",
        port=server.port("smtp"),
        start_tls=False,
    )


async def inject(http: httpx.AsyncClient, boss: Account, **fields: Any) -> dict[str, Any]:
    body = {"from_address": "app@example.org", "to_addresses": [fields["mailbox"]]}
    body.update(subject="Injected", text_body="hello")
    body.update(fields)
    response = await http.post("/api/v1/emails/inject", headers=boss.headers, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def with_attachment(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Sender Name <sender@example.org>"
    message["To"] = "someone@example.test"
    message["Subject"] = subject
    message.set_content("Body text with the word pineapple.\n")
    message.add_alternative("<p>Body <b>HTML</b></p>\n", subtype="html")
    message.add_attachment(PDF_BYTES, maintype="application", subtype="pdf", filename="report.pdf")
    return message


# --- reading ---------------------------------------------------------------------------------


async def test_raw_download_is_byte_identical_to_what_smtp_received(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    sent = (
        b"From: a@example.org\r\nTo: " + address.encode() + b"\r\nSubject: bytes\r\n"
        b"X-Odd:   spacing kept  \r\n\r\nline one\r\n.leading dot\r\n\r\n"
    )
    await smtp_send(server, sent, [address])
    listing = (
        await http.get("/api/v1/emails", headers=boss.headers, params={"mailbox": address})
    ).json()
    uid = listing["emails"][0]["uid"]
    raw = await http.get(
        f"/api/v1/emails/{uid}/raw", headers=boss.headers, params={"mailbox": address}
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "message/rfc822"
    assert raw.headers["content-disposition"] == f'attachment; filename="{uid}.eml"'
    # Return-Path (the final delivery's, RFC 5321 section 4.4), our Received header,
    # then exactly the DATA bytes.
    assert raw.content.startswith(b"Return-Path: <sender@example.org>\r\nReceived: ")
    assert raw.content.endswith(sent)
    by_path = await http.get(f"/api/v1/mailboxes/{address}/emails/{uid}/raw", headers=boss.headers)
    assert by_path.content == raw.content


async def test_detail_and_attachment_bytes(server: MailcueServer, http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    message = with_attachment("Quarterly — résumé")
    message.replace_header("To", address)
    message["Cc"] = "Carol <carol@example.test>"
    await smtp_send(server, message, [address])
    listing = (
        await http.get("/api/v1/emails", headers=boss.headers, params={"mailbox": address})
    ).json()
    summary = listing["emails"][0]
    assert summary["subject"] == "Quarterly — résumé"
    assert summary["from_address"] == "sender@example.org"
    assert summary["from_name"] == "Sender Name"
    assert summary["has_attachments"] is True
    assert summary["is_read"] is False
    detail = (
        await http.get(
            f"/api/v1/emails/{summary['uid']}", headers=boss.headers, params={"mailbox": address}
        )
    ).json()
    assert detail["text_body"] == "Body text with the word pineapple.\n"
    assert "<b>HTML</b>" in detail["html_body"]
    assert detail["cc_addresses"] == ["carol@example.test"]
    assert detail["raw_headers"]["Subject"] == "Quarterly — résumé"
    [part] = detail["attachments"]
    assert (part["filename"], part["content_type"], part["size"]) == (
        "report.pdf",
        "application/pdf",
        len(PDF_BYTES),
    )
    download = await http.get(
        f"/api/v1/emails/{summary['uid']}/attachments/{part['part_id']}",
        headers=boss.headers,
        params={"mailbox": address},
    )
    assert download.status_code == 200
    assert download.content == PDF_BYTES
    assert download.headers["content-type"] == "application/pdf"
    assert 'filename="report.pdf"' in download.headers["content-disposition"]
    for bad in ("9", "../../etc/passwd", "1.2.3.4.5", "0"):
        missing = await http.get(
            f"/api/v1/emails/{summary['uid']}/attachments/{bad}",
            headers=boss.headers,
            params={"mailbox": address},
        )
        assert missing.status_code == 404, bad


async def test_pages_are_disjoint_and_cover_the_folder(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    for n in range(23):
        await inject(
            http, boss, mailbox=address, subject=f"n{n}", date=f"2026-01-01T00:{n:02d}:00Z"
        )
    for sort in ("date_desc", "date_asc"):
        seen: list[str] = []
        page = 1
        while True:
            body = (
                await http.get(
                    "/api/v1/emails",
                    headers=boss.headers,
                    params={"mailbox": address, "page": page, "page_size": 5, "sort": sort},
                )
            ).json()
            assert body["total"] == 23
            seen += [e["subject"] for e in body["emails"]]
            if not body["has_more"]:
                break
            page += 1
        assert page == 5
        expected = [f"n{n}" for n in range(23)]
        assert seen == (expected if sort == "date_asc" else expected[::-1])


async def test_search_filters(server: MailcueServer, http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    await inject(
        http,
        boss,
        mailbox=address,
        from_address="alice@shop.example",
        subject="Order shipped",
        text_body="Your parcel with tracking code ZX81 is on its way",
        date="2026-03-01T10:00:00Z",
    )
    await inject(
        http,
        boss,
        mailbox=address,
        from_address="bob@bank.example",
        subject="Statement ready",
        text_body="Monthly statement attached",
        date="2026-05-01T10:00:00Z",
        flags=["\\Seen"],
    )
    attached = with_attachment("Invoice with file")
    attached.replace_header("To", address)
    await smtp_send(server, attached, [address])

    async def subjects(search: str) -> set[str]:
        response = await http.get(
            "/api/v1/emails",
            headers=boss.headers,
            params={"mailbox": address, "search": search},
        )
        assert response.status_code == 200, response.text
        return {e["subject"] for e in response.json()["emails"]}

    assert await subjects("parcel") == {"Order shipped"}
    assert await subjects("from:bob@bank.example") == {"Statement ready"}
    assert await subjects(f"to:{address}") == {
        "Order shipped",
        "Statement ready",
        "Invoice with file",
    }
    assert await subjects("subject:statement") == {"Statement ready"}
    assert await subjects("has:attachment") == {"Invoice with file"}
    assert await subjects("is:read") == {"Statement ready"}
    assert await subjects("is:unread") == {"Order shipped", "Invoice with file"}
    assert await subjects("before:2026-04-01 -has:attachment") == {"Order shipped"}
    assert await subjects("after:2026-04-01 -has:attachment") == {"Statement ready"}
    assert await subjects('"tracking code"') == {"Order shipped"}
    assert await subjects('"code tracking"') == set()
    assert await subjects("-parcel -pineapple") == {"Statement ready"}


@pytest.mark.parametrize("search", ["\\", "!!", '"', "-", "* ..."])
async def test_a_search_with_nothing_to_look_for_is_400_never_everything(
    http: httpx.AsyncClient, search: str
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    await inject(http, boss, mailbox=address, subject="One of two")
    await inject(http, boss, mailbox=address, subject="Two of two")

    listed = await http.get(
        "/api/v1/emails", headers=boss.headers, params={"mailbox": address, "search": search}
    )
    by_path = await http.get(
        f"/api/v1/mailboxes/{address}/emails", headers=boss.headers, params={"search": search}
    )
    answer = await graphql(
        http,
        boss,
        "query($m: String!, $s: String!) { emails(mailbox: $m, search: $s) { total } }",
        m=address,
        s=search,
    )

    for response in (listed, by_path):
        assert response.status_code == 400, response.text
        assert "has nothing to look for" in response.json()["detail"]
    assert answer["data"] is None
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "INVALID" and "nothing to look for" in error["message"]
    # An empty search is no search: both messages.
    blank = await http.get(
        "/api/v1/emails", headers=boss.headers, params={"mailbox": address, "search": " "}
    )
    assert blank.status_code == 200 and blank.json()["total"] == 2


# --- changing --------------------------------------------------------------------------------


async def test_delete_answers_404_after_and_publishes_the_event(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    stored = await inject(http, boss, mailbox=address)
    assert server.bus is not None
    async with server.bus.subscribe([channel_for(address)]) as events:
        response = await http.delete(
            f"/api/v1/emails/{stored['uid']}", headers=boss.headers, params={"mailbox": address}
        )
        assert response.status_code == 204
        event = await asyncio.wait_for(anext(aiter(events)), 1)
    assert (event.type, event.mailbox, event.uid) == (
        EventType.EMAIL_DELETED,
        address,
        int(stored["uid"]),
    )
    again = await http.get(
        f"/api/v1/emails/{stored['uid']}", headers=boss.headers, params={"mailbox": address}
    )
    assert again.status_code == 404
    twice = await http.delete(
        f"/api/v1/emails/{stored['uid']}", headers=boss.headers, params={"mailbox": address}
    )
    assert twice.status_code == 404


async def test_flags_spam_and_bulk_delete(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    uids = [(await inject(http, boss, mailbox=address, subject=f"s{n}"))["uid"] for n in range(4)]
    base = f"/api/v1/mailboxes/{address}/emails"
    flagged = await http.patch(
        f"{base}/{uids[0]}/flags", headers=boss.headers, json={"seen": True}
    )
    assert flagged.status_code == 200, flagged.text
    detail = (await http.get(f"{base}/{uids[0]}", headers=boss.headers)).json()
    assert detail["is_read"] is True
    spam = await http.post(f"{base}/{uids[1]}/spam", headers=boss.headers, json={})
    assert spam.status_code == 200
    junk_uid = spam.json()["uid"]
    listed = (await http.get("/api/v1/mailboxes", headers=boss.headers)).json()
    mine = next(m for m in listed["mailboxes"] if m["address"] == address)
    assert (mine["email_count"], mine["unread_count"], mine["junk_count"]) == (4, 3, 1)
    back = await http.post(f"{base}/{junk_uid}/not-spam", headers=boss.headers)
    assert back.status_code == 200 and back.json()["folder"] == "INBOX"
    deleted = await http.post(
        f"{base}/bulk-delete", headers=boss.headers, json={"uids": [uids[2], uids[3], "999", "x"]}
    )
    assert deleted.json() == {"deleted": 2, "failed": 2}
    stats = (await http.get(f"/api/v1/mailboxes/{address}/stats", headers=boss.headers)).json()
    assert stats["total_emails"] == 2
    inbox = next(f for f in stats["folders"] if f["name"] == "INBOX")
    assert (inbox["message_count"], inbox["unseen_count"]) == (2, 1)


def imap_flags(server: MailcueServer, address: str, password: str, uid: str) -> set[str]:
    """FETCH FLAGS of one message, as an IMAP client sees it."""
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as client:
        client.login(address, password)
        client.select("INBOX", readonly=True)
        _, data = client.uid("FETCH", uid, "(FLAGS)")
        line = bytes(data[0]).decode()
        return set(line.split("FLAGS (", 1)[1].split(")", 1)[0].split())


SET_FLAGS = """
mutation($m: String!, $uid: String!, $input: UpdateFlagsInput!) {
  setEmailFlags(mailbox: $m, uid: $uid, input: $input) {
    __typename
    ... on EmailChange { details }
    ... on OperationError { code message }
  }
}
"""


async def test_flags_users_expect_are_set_seen_over_imap_and_announced(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss, password="flags-imap-pass")
    uid = (await inject(http, boss, mailbox=address, subject="flag me"))["uid"]
    url = f"/api/v1/mailboxes/{address}/emails/{uid}/flags"

    async with sse_stream(server, boss.headers, mailbox=address) as feed:
        response = await http.patch(
            url,
            headers=boss.headers,
            json={"flagged": True, "answered": True, "add_keywords": ["$Label1", "NonJunk"]},
        )
        event = await feed.expect("email.flags_changed", address)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "uid": uid,
        "status": "unread",
        "flags": "\\Answered \\Flagged $Label1 NonJunk",
    }
    assert event.uid == int(uid)
    assert set(event.details["flags"]) == {"\\Answered", "\\Flagged", "$Label1", "NonJunk"}
    seen_by_imap = await asyncio.to_thread(imap_flags, server, address, "flags-imap-pass", uid)
    assert seen_by_imap == {"\\Answered", "\\Flagged", "$Label1", "NonJunk"}
    detail = await http.get(f"/api/v1/mailboxes/{address}/emails/{uid}", headers=boss.headers)
    assert set(detail.json()["flags"]) == seen_by_imap and detail.json()["is_read"] is False

    # Fields left out stay; the reference API's {"seen": ...} body works as it did.
    read = await http.patch(url, headers=boss.headers, json={"seen": True})
    assert read.json()["status"] == "read"
    cleared = await http.patch(
        url,
        headers=boss.headers,
        json={"flagged": False, "draft": True, "remove_keywords": ["$Label1"]},
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["flags"] == "\\Seen \\Answered \\Draft NonJunk"
    assert await asyncio.to_thread(imap_flags, server, address, "flags-imap-pass", uid) == {
        "\\Seen",
        "\\Answered",
        "\\Draft",
        "NonJunk",
    }

    over_graphql = await graphql(
        http,
        boss,
        SET_FLAGS,
        m=address,
        uid=uid,
        input={"flagged": True, "seen": False, "deleted": True, "addKeywords": ["$Work"]},
    )
    details = over_graphql["data"]["setEmailFlags"]["details"]
    assert details["flags"] == "\\Answered \\Flagged \\Deleted \\Draft $Work NonJunk"
    assert details["status"] == "unread"
    assert "\\Deleted" in await asyncio.to_thread(
        imap_flags, server, address, "flags-imap-pass", uid
    )
    unknown = await graphql(http, boss, SET_FLAGS, m=address, uid=uid, input={"starred": True})
    assert unknown["data"] is None and "starred" in unknown["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"flagged": True, "starred": True}, 422, "starred"),
        ({"seen": "perhaps"}, 422, "seen"),
        ({"add_keywords": "$Label1"}, 422, "add_keywords"),
        ([], 422, ""),
        ({}, 400, "Nothing to change"),
        ({"seen": None}, 400, "Nothing to change"),
        ({"add_keywords": ["\\Custom"]}, 400, "is not an IMAP keyword"),
        ({"add_keywords": ["two words"]}, 400, "is not an IMAP keyword"),
        ({"add_keywords": [""]}, 400, "is not an IMAP keyword"),
        ({"add_keywords": ["a" * 101]}, 400, "is not an IMAP keyword"),
        ({"add_keywords": ["$A"], "remove_keywords": ["$A"]}, 400, "both in add_keywords"),
    ],
)
async def test_bad_flag_changes_are_refused_and_change_nothing(
    http: httpx.AsyncClient, body: Any, status: int, detail: str
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    uid = (await inject(http, boss, mailbox=address))["uid"]
    url = f"/api/v1/mailboxes/{address}/emails/{uid}/flags"

    response = await http.patch(url, headers=boss.headers, json=body)

    assert response.status_code == status, response.text
    assert detail in response.text
    after = await http.get(f"/api/v1/mailboxes/{address}/emails/{uid}", headers=boss.headers)
    assert after.json()["flags"] == []


# --- inject ----------------------------------------------------------------------------------


def imap_subjects(server: MailcueServer, address: str, password: str) -> list[str]:
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as client:
        client.login(address, password)
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [
            bytes(item[1]).decode().split(":", 1)[1].strip()
            for item in data
            if isinstance(item, tuple)
        ]


async def test_inject_and_bulk_inject_are_visible_over_imap(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss, password="imap-pass-123")
    one = await inject(
        http,
        boss,
        mailbox=address,
        subject="single",
        headers={"X-Test-Case": "42"},
        cc_addresses=["cc@example.test"],
        return_path="bounce@example.org",
    )
    raw = (
        await http.get(
            f"/api/v1/emails/{one['uid']}/raw", headers=boss.headers, params={"mailbox": address}
        )
    ).content
    assert raw.startswith(b"Return-Path: <bounce@example.org>\r\nReceived: from mail.example.org")
    assert b"X-Test-Case: 42\r\n" in raw and b"Cc: cc@example.test\r\n" in raw
    assert one["message_id"].encode() in raw
    batch = [
        {
            "mailbox": address,
            "from_address": "x@example.org",
            "to_addresses": [address],
            "subject": f"bulk {n}",
        }
        for n in range(3)
    ]
    batch.append(
        {
            "mailbox": unique("missing"),
            "from_address": "x@example.org",
            "to_addresses": ["a@b.test"],
            "subject": "lost",
        }
    )
    batch.append(
        {
            "mailbox": address,
            "from_address": "not an address",
            "to_addresses": [address],
            "subject": "bad",
        }
    )
    response = await http.post(
        "/api/v1/emails/bulk-inject", headers=boss.headers, json={"emails": batch}
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["injected"], result["failed"], len(result["ids"])) == (3, 2, 3)
    assert [e.split(":")[0] for e in result["errors"]] == ["3", "4"]
    subjects = await asyncio.to_thread(imap_subjects, server, address, "imap-pass-123")
    assert subjects == ["single", "bulk 0", "bulk 1", "bulk 2"]


async def test_bulk_inject_limit_and_bad_input(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    item = {
        "mailbox": address,
        "from_address": "x@example.org",
        "to_addresses": [address],
        "subject": "s",
    }
    too_many = await http.post(
        "/api/v1/emails/bulk-inject", headers=boss.headers, json={"emails": [item] * 1001}
    )
    assert too_many.status_code == 400
    wrong_types = await http.post(
        "/api/v1/emails/inject", headers=boss.headers, json={**item, "to_addresses": "x@y.test"}
    )
    assert wrong_types.status_code == 422
    bad_header = await http.post(
        "/api/v1/emails/inject",
        headers=boss.headers,
        json={**item, "headers": {"X-Evil": "a\r\nBcc: victim@example.test"}},
    )
    assert bad_header.status_code == 400
    signed = await http.post(
        "/api/v1/emails/inject", headers=boss.headers, json={**item, "sign": True}
    )
    assert signed.status_code == 400
    listing = (
        await http.get("/api/v1/emails", headers=boss.headers, params={"mailbox": address})
    ).json()
    assert listing["total"] == 0  # nothing half-stored


async def test_bad_listing_parameters(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    for params, status in (
        ({"page": 0}, 400),
        ({"page_size": 0}, 400),
        ({"page_size": 100000}, 400),
        ({"sort": "size"}, 400),
        ({"page": "one"}, 422),
        ({"folder": "Nope"}, 404),
    ):
        response = await http.get(
            "/api/v1/emails", headers=boss.headers, params={"mailbox": address, **params}
        )
        assert response.status_code == status, (params, response.text)
    # "³" is a digit to str.isdigit() but not to int(): it gave 500 on every uid route.
    for uid in ("abc", "-1", "0", "99999999999", "1%2F..%2F2", "³", "1²"):
        response = await http.get(
            f"/api/v1/emails/{uid}", headers=boss.headers, params={"mailbox": address}
        )
        assert response.status_code == 404, uid


# --- who may see what ------------------------------------------------------------------------


async def test_other_users_mailboxes_are_absent(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    intruder = await new_user(http)
    boss = await admin(http)
    address = await new_mailbox(http, owner)
    stored = await inject(http, boss, mailbox=address)
    own = await http.get("/api/v1/emails", headers=owner.headers, params={"mailbox": address})
    assert own.status_code == 200 and own.json()["total"] == 1
    for path in (
        f"/api/v1/emails/{stored['uid']}",
        f"/api/v1/emails/{stored['uid']}/raw",
        "/api/v1/emails",
    ):
        response = await http.get(path, headers=intruder.headers, params={"mailbox": address})
        assert response.status_code == 404, path
    nothing = await http.get(
        "/api/v1/emails", headers=intruder.headers, params={"mailbox": unique("nobody")}
    )
    assert nothing.status_code == 404
    assert nothing.json() == response.json() | {"detail": nothing.json()["detail"]}
    deleted = await http.delete(
        f"/api/v1/emails/{stored['uid']}", headers=intruder.headers, params={"mailbox": address}
    )
    assert deleted.status_code == 404
    assert (await http.get("/api/v1/mailboxes", headers=intruder.headers)).json()["total"] == 0
    stats = await http.get(f"/api/v1/mailboxes/{address}/stats", headers=intruder.headers)
    assert stats.status_code == 404
    assert (await http.get("/api/v1/emails", params={"mailbox": address})).status_code == 401


async def test_key_scopes_and_allow_list(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    boss = await admin(http)
    first = await new_mailbox(http, owner)
    second = await new_mailbox(http, owner)
    stored = await inject(http, boss, mailbox=first)
    read_only = {"X-API-Key": (await new_api_key(http, owner, scopes=["email:read"]))["key"]}
    ok = await http.get("/api/v1/emails", headers=read_only, params={"mailbox": first})
    assert ok.status_code == 200
    denied = await http.delete(
        f"/api/v1/emails/{stored['uid']}", headers=read_only, params={"mailbox": first}
    )
    assert denied.status_code == 403
    assert "email:delete" in denied.json()["detail"]
    mailbox_scope = {"X-API-Key": (await new_api_key(http, owner, scopes=["mailbox:read"]))["key"]}
    assert (
        await http.get("/api/v1/emails", headers=mailbox_scope, params={"mailbox": first})
    ).status_code == 403
    fenced = {
        "X-API-Key": (
            await new_api_key(
                http, owner, scopes=["email:read", "mailbox:read"], allowed_mailboxes=[second]
            )
        )["key"]
    }
    hidden = await http.get("/api/v1/emails", headers=fenced, params={"mailbox": first})
    assert hidden.status_code == 404
    visible = await http.get("/api/v1/emails", headers=fenced, params={"mailbox": second})
    assert visible.status_code == 200
    listed = (await http.get("/api/v1/mailboxes", headers=fenced)).json()
    assert [m["address"] for m in listed["mailboxes"]] == [second]
    user_inject = await http.post(
        "/api/v1/emails/inject",
        headers=owner.headers,
        json={
            "mailbox": first,
            "from_address": "a@b.test",
            "to_addresses": [first],
            "subject": "s",
        },
    )
    assert user_inject.status_code == 403


# --- mailboxes -------------------------------------------------------------------------------


async def test_mailbox_lifecycle(server: MailcueServer, http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    boss = await admin(http)
    local = f"life{secrets.token_hex(3)}"
    created = await http.post(
        "/api/v1/mailboxes",
        headers=user.headers,
        json={"username": local, "password": "life-pass-123", "display_name": "Life Box"},
    )
    assert created.status_code == 201, created.text
    box = created.json()
    assert box["address"] == f"{local}@{server.settings.domain}"
    assert (box["username"], box["display_name"], box["owner_id"]) == (
        local,
        "Life Box",
        user.user["id"],
    )
    again = await http.post(
        "/api/v1/mailboxes",
        headers=user.headers,
        json={"username": local, "password": "life-pass-123"},
    )
    assert again.status_code == 409
    for bad in (
        {"username": "a@b", "password": "long-enough"},
        {"username": "ok", "password": "short"},
        {"username": "x y", "password": "long-enough"},
    ):
        assert (
            await http.post("/api/v1/mailboxes", headers=user.headers, json=bad)
        ).status_code == 400
    address = box["address"]
    renamed = await http.put(
        f"/api/v1/mailboxes/{address}/display-name",
        headers=user.headers,
        json={"display_name": "New"},
    )
    assert renamed.status_code == 200
    signed = await http.put(
        f"/api/v1/mailboxes/{address}/signature",
        headers=user.headers,
        json={"signature": "-- \nMe"},
    )
    assert signed.status_code == 200
    listed = (await http.get("/api/v1/mailboxes", headers=user.headers)).json()
    assert [(m["display_name"], m["signature"]) for m in listed["mailboxes"]] == [
        ("New", "-- \nMe")
    ]
    by_id = await http.get(f"/api/v1/mailboxes/{box['id']}/stats", headers=user.headers)
    assert by_id.status_code == 200
    assert [f["name"] for f in by_id.json()["folders"]] == [
        "INBOX",
        "Sent",
        "Drafts",
        "Trash",
        "Junk",
    ]
    await inject(http, boss, mailbox=address)
    await inject(http, boss, mailbox=address)
    purged = await http.post(f"/api/v1/mailboxes/{address}/purge", headers=user.headers)
    assert purged.json() == {"deleted": 2}
    removed = await http.delete(f"/api/v1/mailboxes/{address}", headers=user.headers)
    assert removed.status_code == 204
    assert (
        await http.get(f"/api/v1/mailboxes/{address}/stats", headers=user.headers)
    ).status_code == 404

    def imap_login_fails() -> bool:
        with imaplib.IMAP4("127.0.0.1", server.port("imap")) as client:
            try:
                client.login(address, "life-pass-123")
            except imaplib.IMAP4.error:
                return True
            return False

    assert await asyncio.to_thread(imap_login_fails)


async def test_mailbox_quota_for_users(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    user = await new_user(http)
    limited = await http.put(
        f"/api/v1/auth/users/{user.user['id']}", headers=boss.headers, json={"max_mailboxes": 1}
    )
    assert limited.status_code == 200, limited.text
    await new_mailbox(http, user)
    over = await http.post(
        "/api/v1/mailboxes",
        headers=user.headers,
        json={"username": f"q{secrets.token_hex(3)}", "password": "quota-pass-1"},
    )
    assert over.status_code == 403


# --- GraphQL ---------------------------------------------------------------------------------


async def test_graphql_twins(server: MailcueServer, http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    made = await graphql(
        http,
        boss,
        """mutation($input: MailboxCreateInput!) {
             createMailbox(input: $input) { __typename ... on Mailbox { address } }
           }""",
        input={
            "username": f"gql{secrets.token_hex(3)}",
            "password": "gql-pass-123",
            "domain": "example.test",
        },
    )
    address = made["data"]["createMailbox"]["address"]
    injected = await graphql(
        http,
        boss,
        """mutation($input: InjectEmailInput!) {
             injectEmail(input: $input) { __typename ... on Injected { uid } }
           }""",
        input={
            "mailbox": address,
            "fromAddress": "g@example.org",
            "toAddresses": [address],
            "subject": "Over GraphQL",
            "textBody": "graph body",
            "headers": {"X-Via": "gql"},
        },
    )
    assert "errors" not in injected, injected
    uid = injected["data"]["injectEmail"]["uid"]
    page = await graphql(
        http,
        boss,
        """query($mailbox: String!, $uid: String!) {
             emails(mailbox: $mailbox, search: "graph") { total emails { uid subject isRead } }
             email(mailbox: $mailbox, uid: $uid) { textBody rawHeaders }
             emailRaw(mailbox: $mailbox, uid: $uid) { filename contentType contentBase64 }
             mailboxStats(mailboxId: $mailbox) { totalEmails }
           }""",
        mailbox=address,
        uid=uid,
    )
    data = page["data"]
    assert data["emails"] == {
        "total": 1,
        "emails": [{"uid": uid, "subject": "Over GraphQL", "isRead": False}],
    }
    assert data["email"]["textBody"] == "graph body\n"
    assert data["email"]["rawHeaders"]["X-Via"] == "gql"
    rest_raw = (
        await http.get(
            f"/api/v1/emails/{uid}/raw", headers=boss.headers, params={"mailbox": address}
        )
    ).content
    assert base64.b64decode(data["emailRaw"]["contentBase64"]) == rest_raw
    assert data["mailboxStats"]["totalEmails"] == 1
    gone = await graphql(
        http,
        boss,
        """mutation($mailbox: String!, $uid: String!) {
             deleteEmail(mailbox: $mailbox, uid: $uid) {
               __typename ... on OperationError { code }
             }
           }""",
        mailbox=address,
        uid=uid,
    )
    assert gone["data"]["deleteEmail"]["__typename"] == "Done"
    missing = await graphql(
        http,
        boss,
        "query($m: String!, $u: String!) { email(mailbox: $m, uid: $u) { subject } }",
        m=address,
        u=uid,
    )
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    intruder = await new_user(http)
    hidden = await graphql(
        http, intruder, "query($m: String!) { emails(mailbox: $m) { total } }", m=address
    )
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
