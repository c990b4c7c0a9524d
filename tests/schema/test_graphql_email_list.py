"""The email list a UI scrolls, over real HTTP: cursor pages, "All mail", nested fields,
and a fixed number of SQL statements per page whatever its size."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import httpx

from accounts import Account, admin, new_user
from live_events import WAIT, new_address
from mailcue_server.app import MailcueServer
from mailcue_server.store import mailboxes

ROW = "uid mailbox folder subject fromAddress preview date flags isRead hasAttachments"
FOLDER_PAGE = f"""
query ($mailbox: String, $folder: String! = "INBOX", $first: Int!, $after: String,
       $search: String) {{
  emailConnection(mailbox: $mailbox, folder: $folder, first: $first, after: $after,
                  search: $search) {{
    totalCount
    edges {{ cursor node {{ id {ROW} }} }}
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
  }}
}}"""
ALL_MAIL = f"""
query ($folder: String, $first: Int!, $after: String) {{
  allMail(folder: $folder, first: $first, after: $after) {{
    totalCount
    edges {{ cursor node {{ {ROW} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
NESTED_PAGE = f"""
query ($mailbox: String, $first: Int!) {{
  emailConnection(mailbox: $mailbox, first: $first) {{
    edges {{ node {{
      {ROW}
      attachments {{ filename contentType size partId }}
      authentication {{ spf dkim dmarc }}
      envelope {{ mailFrom rcptTo deliveredTo bcc helo listener }}
    }} }}
  }}
}}"""
MAILBOX_FOLDERS = """
{ mailboxes { total mailboxes { address unreadCount
    folders { name specialUse messageCount unseenCount sizeBytes } } } }"""


async def gql(
    http: httpx.AsyncClient, account: Account, query: str, **variables: Any
) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def data(http: httpx.AsyncClient, account: Account, query: str, **variables: Any) -> Any:
    body = await gql(http, account, query, **variables)
    assert "errors" not in body, body
    return body["data"]


def mail(to: str, subject: str, *, attach: bool) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Sender <sender@example.test>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"Body of {subject}.")
    if attach:
        message.add_attachment(
            b"%PDF-1.4 test", maintype="application", subtype="pdf", filename=f"{subject}.pdf"
        )
    return message


async def deliver(
    server: MailcueServer, to: str, subjects: list[str], *, attach: bool = False
) -> None:
    """Send each subject as one message over one real SMTP session."""

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=WAIT) as client:
            for subject in subjects:
                client.send_message(
                    mail(to, subject, attach=attach), "sender@example.test", [to, f"hidden-{to}"]
                )

    await asyncio.to_thread(send)


async def owned_mailbox(server: MailcueServer, owner: Account, prefix: str) -> str:
    assert server.bus is not None
    address = new_address(prefix)
    await mailboxes.create_mailbox(address, bus=server.bus, owner_id=owner.user["id"])
    return address


async def read_all(
    http: httpx.AsyncClient, account: Account, query: str, field: str, first: int, **variables: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page from the start; returns the rows and each page's info."""
    rows: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        got = (await data(http, account, query, first=first, after=after, **variables))[field]
        rows += [edge["node"] for edge in got["edges"]]
        pages.append(got["pageInfo"])
        if not got["pageInfo"]["hasNextPage"]:
            return rows, pages
        after = got["pageInfo"]["endCursor"]


async def test_cursor_pages_are_newest_first_and_live_mail_never_shifts_them(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    box = await owned_mailbox(server, user, "pages")
    await deliver(server, box, [f"old {n}" for n in range(12)])

    first = (await data(http, user, FOLDER_PAGE, mailbox=box, first=5))["emailConnection"]
    assert first["totalCount"] == 12
    assert [e["node"]["subject"] for e in first["edges"]] == [
        f"old {n}" for n in (11, 10, 9, 8, 7)
    ]
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]
    node = first["edges"][0]["node"]
    assert node["mailbox"] == box and node["folder"] == "INBOX" and node["isRead"] is False
    assert node["fromAddress"] == "sender@example.test" and node["preview"].startswith("Body")

    # New mail arrives while the user scrolls: later pages neither shift nor repeat.
    await deliver(server, box, [f"new {n}" for n in range(3)])
    rest: list[str] = []
    after = first["pageInfo"]["endCursor"]
    while after:
        page = await data(http, user, FOLDER_PAGE, mailbox=box, first=5, after=after)
        connection = page["emailConnection"]
        rest += [e["node"]["subject"] for e in connection["edges"]]
        assert connection["pageInfo"]["hasPreviousPage"]
        after = (
            connection["pageInfo"]["endCursor"] if connection["pageInfo"]["hasNextPage"] else None
        )
    assert rest == [f"old {n}" for n in range(6, -1, -1)]
    # The top of the list has them.
    top = (await data(http, user, FOLDER_PAGE, mailbox=box, first=3))["emailConnection"]
    assert [e["node"]["subject"] for e in top["edges"]] == ["new 2", "new 1", "new 0"]
    assert top["totalCount"] == 15


async def test_search_pages_by_cursor_too(server: MailcueServer, http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    box = await owned_mailbox(server, user, "search")
    await deliver(server, box, [f"{'apple' if n % 2 else 'pear'} {n}" for n in range(9)])
    rows, pages = await read_all(
        http, user, FOLDER_PAGE, "emailConnection", 2, mailbox=box, search="apple"
    )
    assert [r["subject"] for r in rows] == ["apple 7", "apple 5", "apple 3", "apple 1"]
    assert len(pages) == 2


async def test_bad_cursors_and_sizes_are_invalid(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    box = await owned_mailbox(server, user, "bad")
    await deliver(server, box, ["one", "two"])
    all_mail = (await data(http, user, ALL_MAIL, first=1))["allMail"]
    for variables in (
        {"after": "not-a-cursor", "first": 5},
        {"after": all_mail["pageInfo"]["endCursor"], "first": 5},  # another list's cursor
        {"first": 0},
        {"first": 501},
    ):
        body = await gql(http, user, FOLDER_PAGE, mailbox=box, **variables)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID"]


async def test_all_mail_spans_the_callers_mailboxes_only(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user, stranger = await new_user(http), await new_user(http)
    home, work = (
        await owned_mailbox(server, user, "home"),
        await owned_mailbox(server, user, "work"),
    )
    theirs = await owned_mailbox(server, stranger, "theirs")
    await deliver(server, home, ["home 1"])
    await deliver(server, theirs, ["not yours"])
    await deliver(server, work, ["work 1", "spam 1"])
    await deliver(server, home, ["home 2"])
    spam = (await data(http, user, FOLDER_PAGE, mailbox=work, first=1))["emailConnection"]
    moved = await gql(
        http,
        user,
        "mutation ($m: String!, $u: String!) { markEmailSpam(mailbox: $m, uid: $u) "
        "{ __typename } }",
        m=work,
        u=spam["edges"][0]["node"]["uid"],
    )
    assert moved["data"]["markEmailSpam"]["__typename"] == "EmailChange"

    rows, _ = await read_all(http, user, ALL_MAIL, "allMail", 2)
    assert [(r["subject"], r["mailbox"], r["folder"]) for r in rows] == [
        ("home 2", home, "INBOX"),
        ("work 1", work, "INBOX"),
        ("home 1", home, "INBOX"),
    ]
    junk = (await data(http, user, ALL_MAIL, folder="Junk", first=10))["allMail"]
    assert [e["node"]["subject"] for e in junk["edges"]] == ["spam 1"]
    assert junk["totalCount"] == 1
    assert (await data(http, user, ALL_MAIL, first=10))["allMail"]["totalCount"] == 3


class Statements(logging.Handler):
    """Counts the SQL statements Tortoise runs (it logs each one at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextmanager
def counting() -> Iterator[Statements]:
    logger = logging.getLogger("tortoise.db_client")
    handler, level = Statements(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def statements_for(
    http: httpx.AsyncClient, account: Account, query: str, **variables: Any
) -> int:
    """The fewest statements of three runs (a background worker may poll during one)."""
    counts = []
    for _ in range(3):
        with counting() as seen:
            await data(http, account, query, **variables)
        counts.append(seen.count)
    return min(counts)


async def test_nested_fields_cost_the_same_statements_for_5_and_50_rows(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    box = await owned_mailbox(server, user, "nested")
    await deliver(server, box, [f"m{n}" for n in range(55)], attach=True)

    page = (await data(http, user, NESTED_PAGE, mailbox=box, first=5))["emailConnection"]
    node = page["edges"][0]["node"]
    assert node["hasAttachments"] is True
    assert node["attachments"] == [
        {"filename": "m54.pdf", "contentType": "application/pdf", "size": 13, "partId": "2"}
    ]
    assert node["authentication"] is None  # this node does not check SPF/DKIM/DMARC
    assert node["envelope"]["mailFrom"] == "sender@example.test"
    assert node["envelope"]["rcptTo"] == [box] and node["envelope"]["bcc"] == []
    assert node["envelope"]["listener"] == "smtp"

    few = await statements_for(http, user, NESTED_PAGE, mailbox=box, first=5)
    many = await statements_for(http, user, NESTED_PAGE, mailbox=box, first=50)
    assert few == many, (few, many)
    assert few <= 8


async def test_mailbox_folders_cost_the_same_statements_for_1_and_6_mailboxes(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    one, six = await new_user(http), await new_user(http)
    solo = await owned_mailbox(server, one, "solo")
    await deliver(server, solo, ["unread"])
    for n in range(6):
        await owned_mailbox(server, six, f"six{n}")

    listed = (await data(http, one, MAILBOX_FOLDERS))["mailboxes"]["mailboxes"]
    assert [m["address"] for m in listed] == [solo] and listed[0]["unreadCount"] == 1
    folders = listed[0]["folders"]
    assert [(f["name"], f["specialUse"]) for f in folders] == [
        ("INBOX", None),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
    ]
    assert (folders[0]["messageCount"], folders[0]["unseenCount"]) == (1, 1)
    assert folders[0]["sizeBytes"] > 0

    assert await statements_for(http, one, MAILBOX_FOLDERS) == await statements_for(
        http, six, MAILBOX_FOLDERS
    )


async def test_rest_mailbox_list_keeps_its_shape(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    listed = (await http.get("/api/v1/mailboxes", headers=boss.headers)).json()
    assert listed["mailboxes"] and all("folders" not in m for m in listed["mailboxes"])
