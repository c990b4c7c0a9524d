"""Mailbox passwords: set over REST and GraphQL, used by IMAP, POP3 and SMTP AUTH,
and the admins' master login ``<address>*<admin>`` over all three (real sockets)."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import secrets
import smtplib

import httpx
import pytest

from accounts import Account, admin, graphql, new_api_key, new_mailbox, new_user
from conftest import ADMIN_PASSWORD, ADMIN_USER
from live_events import smtp_send
from mailcue_server.app import MailcueServer

NEW_PASSWORD = "a-fresh-mailbox-password"
SET_PASSWORD = """
mutation Set($address: String!, $password: String!) {
  setMailboxPassword(address: $address, input: {password: $password}) {
    __typename
    ... on Done { message }
    ... on OperationError { code message }
  }
}
"""


def password_url(address: str) -> str:
    return f"/api/v1/mailboxes/{address}/password"


def imap_login(server: MailcueServer, login: str, password: str) -> int:
    """Log in over IMAP and return how many messages INBOX holds; raises on a refused login."""
    with imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10) as client:
        client.login(login, password)
        status, data = client.select("INBOX", readonly=True)
        assert status == "OK", data
        client.logout()
        return int(data[0] or 0)


def pop3_login(server: MailcueServer, login: str, password: str) -> int:
    """Log in over POP3 and return the maildrop's message count; raises on a refused login."""
    client = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    try:
        client.user(login)
        client.pass_(password)
        count, _ = client.stat()
        return count
    finally:
        client.quit()


def smtp_auth_send(server: MailcueServer, login: str, password: str, sender: str) -> None:
    """AUTH on the submission port, then send one message as ``sender`` to itself."""
    raw = f"From: {sender}\r\nTo: {sender}\r\nSubject: as the mailbox\r\n\r\nhi\r\n".encode()
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=10) as client:
        client.login(login, password)
        client.sendmail(sender, [sender], raw)


async def first_mail_mailbox(server: MailcueServer) -> str:
    """A mailbox test mode made for its first mail: it has no password and no owner."""
    address = f"first-{secrets.token_hex(4)}@mailcue.local"
    await smtp_send(server, address, "first")
    return address


async def refused(call: object, *args: object) -> bool:
    """Whether a blocking login helper fails with the protocol's authentication error."""
    assert callable(call)
    try:
        await asyncio.to_thread(call, *args)
    except (imaplib.IMAP4.error, poplib.error_proto, smtplib.SMTPAuthenticationError):
        return True
    return False


async def test_a_first_mail_mailbox_gets_a_password_and_opens_everywhere(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = await first_mail_mailbox(server)
    assert await refused(imap_login, server, address, NEW_PASSWORD)
    assert await refused(pop3_login, server, address, "")

    response = await http.put(
        password_url(address), headers=boss.headers, json={"password": NEW_PASSWORD}
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await asyncio.to_thread(imap_login, server, address, NEW_PASSWORD) == 1
    assert await asyncio.to_thread(pop3_login, server, address, NEW_PASSWORD) == 1
    await asyncio.to_thread(smtp_auth_send, server, address, NEW_PASSWORD, address)
    assert await refused(imap_login, server, address, NEW_PASSWORD + "x")

    again = await http.put(
        password_url(address.upper()), headers=boss.headers, json={"password": "second-pass-9"}
    )
    assert again.status_code == 204, again.text
    assert await refused(imap_login, server, address, NEW_PASSWORD)
    # The message it sent itself over submission is there too.
    assert await asyncio.to_thread(pop3_login, server, address, "second-pass-9") == 2


async def test_who_may_set_a_password_over_rest(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    owner, stranger = await new_user(http), await new_user(http)
    address = await new_mailbox(http, owner)
    url = password_url(address)

    mine = await http.put(url, headers=owner.headers, json={"password": "owner-chose-this"})
    theirs = await http.put(url, headers=stranger.headers, json={"password": "stranger-pass"})
    missing = await http.put(
        password_url("nobody-here@example.test"),
        headers=owner.headers,
        json={"password": "whatever-pass"},
    )
    anonymous = await http.put(url, json={"password": "anonymous-pass"})

    assert mine.status_code == 204, mine.text
    assert await asyncio.to_thread(imap_login, server, address, "owner-chose-this") == 0
    # Another user's mailbox answers as one that does not exist (the mailbox access rule).
    assert theirs.status_code == 404, theirs.text
    assert missing.status_code == 404, missing.text
    assert theirs.json() == {"detail": f"Mailbox '{address}' not found"}
    assert anonymous.status_code == 401, anonymous.text
    assert await refused(imap_login, server, address, "stranger-pass")

    read_only = (await new_api_key(http, owner, scopes=["mailbox:read"]))["key"]
    writer = (await new_api_key(http, owner, scopes=["mailbox:write"]))["key"]
    denied = await http.put(
        url, headers={"X-API-Key": read_only}, json={"password": "from-a-read-key"}
    )
    allowed = await http.put(url, headers={"X-API-Key": writer}, json={"password": "from-a-key-1"})
    assert denied.status_code == 403, denied.text
    assert "mailbox:write" in denied.json()["detail"]
    assert allowed.status_code == 204, allowed.text
    assert await asyncio.to_thread(pop3_login, server, address, "from-a-key-1") == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"password": "short"}, 400),
        ({"password": "x" * 1025}, 400),
        ({"password": 12345678}, 422),
        ({"password": None}, 422),
        ({}, 422),
        ([], 422),
    ],
)
async def test_bad_passwords_are_refused(
    server: MailcueServer, http: httpx.AsyncClient, body: object, status: int
) -> None:
    owner = await new_user(http)
    address = await new_mailbox(http, owner, password="the-first-password")

    response = await http.put(password_url(address), headers=owner.headers, json=body)

    assert response.status_code == status, response.text
    assert await asyncio.to_thread(imap_login, server, address, "the-first-password") == 0


async def test_set_mailbox_password_over_graphql(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss, owner, stranger = await admin(http), await new_user(http), await new_user(http)
    address = await new_mailbox(http, owner)

    async def attempt(who: Account | dict[str, str], password: str) -> dict[str, object]:
        if isinstance(who, Account):
            answer = await graphql(http, who, SET_PASSWORD, address=address, password=password)
        else:
            response = await http.post(
                "/graphql",
                headers=who,
                json={
                    "query": SET_PASSWORD,
                    "variables": {"address": address, "password": password},
                },
            )
            answer = response.json()
        assert "errors" not in answer, answer
        result: dict[str, object] = answer["data"]["setMailboxPassword"]
        return result

    assert await attempt(owner, "graphql-owner-1") == {"__typename": "Done", "message": "Updated"}
    assert await asyncio.to_thread(imap_login, server, address, "graphql-owner-1") == 0
    assert (await attempt(boss, "graphql-admin-1"))["__typename"] == "Done"
    assert await asyncio.to_thread(pop3_login, server, address, "graphql-admin-1") == 0

    other = await attempt(stranger, "graphql-stranger")
    assert other["__typename"] == "OperationError" and other["code"] == "NOT_FOUND", other
    short = await attempt(owner, "short")
    assert short["code"] == "INVALID" and "8 to 1024" in str(short["message"]), short
    key = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    scoped = await attempt({"X-API-Key": key}, "graphql-key-pass")
    assert scoped["code"] == "FORBIDDEN", scoped
    assert await asyncio.to_thread(imap_login, server, address, "graphql-admin-1") == 0


# --- the master login -------------------------------------------------------------------------


async def test_master_login_opens_any_mailbox_over_imap_pop3_and_smtp(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    address = await first_mail_mailbox(server)  # no password of its own at all
    master = f"{address}*{ADMIN_USER}"

    assert await asyncio.to_thread(imap_login, server, master, ADMIN_PASSWORD) == 1
    assert await asyncio.to_thread(pop3_login, server, master, ADMIN_PASSWORD) == 1
    await asyncio.to_thread(smtp_auth_send, server, master, ADMIN_PASSWORD, address)
    assert await asyncio.to_thread(imap_login, server, address.upper() + "*admin", ADMIN_PASSWORD)

    # Another admin's master login works with that admin's own password.
    other_admin = await new_user(http, is_admin=True)
    assert await asyncio.to_thread(
        pop3_login, server, f"{address}*{other_admin.username}", other_admin.password
    )


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
async def test_master_login_refuses_wrong_passwords_and_non_admins(
    server: MailcueServer, http: httpx.AsyncClient, protocol: str
) -> None:
    login = {"imap": imap_login, "pop3": pop3_login, "smtp": smtp_auth_send}[protocol]
    owner = await new_user(http)
    address = await new_mailbox(http, owner, password="the-mailbox-pass")

    async def refused_for(name: str, password: str) -> bool:
        args = (
            (server, name, password, address) if protocol == "smtp" else (server, name, password)
        )
        return await refused(login, *args)

    boss = await admin(http)
    retired = await new_user(http, is_admin=True)
    off = await http.put(
        f"/api/v1/auth/users/{retired.user['id']}",
        headers=boss.headers,
        json={"is_active": False},
    )
    assert off.status_code == 200, off.text

    assert await refused_for(f"{address}*{ADMIN_USER}", ADMIN_PASSWORD + "-wrong")
    # A user who is not an administrator, with their own right password.
    assert await refused_for(f"{address}*{owner.username}", owner.password)
    assert await refused_for(f"{address}*{retired.username}", retired.password)
    assert await refused_for(f"{address}*nobody-at-all", ADMIN_PASSWORD)
    assert await refused_for(f"nobody-{secrets.token_hex(3)}@mailcue.local*admin", ADMIN_PASSWORD)
    # The mailbox's own password does not combine with an admin's name either.
    assert await refused_for(f"{address}*{ADMIN_USER}", "the-mailbox-pass")
    assert not await refused_for(f"{address}*{ADMIN_USER}", ADMIN_PASSWORD)
