"""Listing a test-mode mailbox that its first mail has not created yet (what wait_for polls).

An admin, or an admin's key whose allow-list names the address, gets an empty
page; everyone else gets the same 404 as for another user's mailbox, so the
answer reveals nothing about other users' mailboxes.
"""

from __future__ import annotations

import secrets

import httpx

from accounts import admin, graphql, new_api_key, new_mailbox, new_user
from live_events import smtp_send
from mailcue_server.app import MailcueServer

EMAILS = "/api/v1/emails"


def fresh() -> str:
    return f"later{secrets.token_hex(4)}@not-yet.test"


async def test_an_admin_sees_an_empty_page_then_the_first_mail(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    boss = await admin(http)
    address = fresh()
    empty = await http.get(EMAILS, params={"mailbox": address}, headers=boss.headers)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "total": 0,
        "page": 1,
        "page_size": 50,
        "emails": [],
        "has_more": False,
    }
    by_path = await http.get(f"/api/v1/mailboxes/{address}/emails", headers=boss.headers)
    assert by_path.status_code == 200 and by_path.json()["total"] == 0
    sent = await http.get(
        EMAILS, params={"mailbox": address, "folder": "Sent"}, headers=boss.headers
    )
    assert sent.status_code == 200 and sent.json()["emails"] == []
    # Nothing was created by looking.
    boxes = (await http.get("/api/v1/mailboxes", headers=boss.headers)).json()["mailboxes"]
    assert address not in [m["address"] for m in boxes]
    await smtp_send(server, address, "first")
    page = (await http.get(EMAILS, params={"mailbox": address}, headers=boss.headers)).json()
    assert [e["subject"] for e in page["emails"]] == ["first"]


async def test_what_stays_an_error(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = fresh()
    odd_folder = await http.get(
        EMAILS, params={"mailbox": address, "folder": "Projects"}, headers=boss.headers
    )
    assert odd_folder.status_code == 404  # a new mailbox will not have it either
    bad_search = await http.get(
        EMAILS, params={"mailbox": address, "search": "has:pictures"}, headers=boss.headers
    )
    assert bad_search.status_code == 400
    not_an_address = await http.get(EMAILS, params={"mailbox": "nobody"}, headers=boss.headers)
    assert not_an_address.status_code == 404
    page_zero = await http.get(
        EMAILS, params={"mailbox": address, "page": 0}, headers=boss.headers
    )
    assert page_zero.status_code == 400
    alias = await http.post(
        "/api/v1/aliases",
        headers=boss.headers,
        json={"source_address": address, "destination_address": fresh()},
    )
    assert alias.status_code == 201, alias.text
    redirected = await http.get(EMAILS, params={"mailbox": address}, headers=boss.headers)
    assert redirected.status_code == 404  # its mail goes elsewhere: it never appears


async def test_keys_follow_their_allow_list(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    address = fresh()
    named = (await new_api_key(http, boss, allowed_mailboxes=[address]))["key"]
    other = (await new_api_key(http, boss, allowed_mailboxes=[fresh()]))["key"]
    no_read = (await new_api_key(http, boss, scopes=["email:send"]))["key"]
    ok = await http.get(EMAILS, params={"mailbox": address}, headers={"X-API-Key": named})
    assert ok.status_code == 200 and ok.json()["total"] == 0
    refused = await http.get(EMAILS, params={"mailbox": address}, headers={"X-API-Key": other})
    assert refused.status_code == 404
    scope = await http.get(EMAILS, params={"mailbox": address}, headers={"X-API-Key": no_read})
    assert scope.status_code == 403


async def test_a_regular_user_learns_nothing_about_other_mailboxes(
    http: httpx.AsyncClient,
) -> None:
    boss = await admin(http)
    taken = await new_mailbox(http, boss)  # exists, not theirs
    user = await new_user(http)
    missing = fresh()
    answers = []
    for address in (taken, missing):
        response = await http.get(EMAILS, params={"mailbox": address}, headers=user.headers)
        answers.append((response.status_code, response.json()["detail"].replace(address, "X")))
    assert answers[0] == answers[1] == (404, "Mailbox 'X' not found")
    own = await new_mailbox(http, user, domain="example.test")
    mine = await http.get(EMAILS, params={"mailbox": own}, headers=user.headers)
    assert mine.status_code == 200


async def test_graphql_lists_alike(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    document = "query ($m: String) { emails(mailbox: $m) { total emails { uid } } }"
    answer = await graphql(http, boss, document, m=fresh())
    assert answer == {"data": {"emails": {"total": 0, "emails": []}}}
    user = await new_user(http)
    refused = await graphql(http, user, document, m=fresh())
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND"
