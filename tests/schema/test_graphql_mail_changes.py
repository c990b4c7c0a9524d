"""The mailChanges subscription over a real WebSocket: each change carries what a list row
shows, so a UI applies it without fetching again."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets
from test_graphql_email_list import FOLDER_PAGE, data, deliver, gql, owned_mailbox
from websockets.typing import Subprotocol

from accounts import PASSWORD, Account, new_user
from live_events import WAIT, new_address, ws_url
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import Event, EventType

ROW = "id uid mailbox folder subject fromAddress fromName preview date flags isRead hasAttachments"
MAIL_CHANGES = f"""
subscription ($mailbox: String) {{
  mailChanges(mailbox: $mailbox) {{
    id kind mailbox folder uid at flags isRead fromFolder fromUid mailboxId
    row {{ {ROW} }}
  }}
}}"""


class Changes:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errors: list[Any] = []

    async def next(self, kind: str | None = None) -> dict[str, Any]:
        """The next change (of ``kind``; probes and others before it are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                change = await self.queue.get()
                if kind is None or change["kind"] == kind:
                    return change


@contextlib.asynccontextmanager
async def subscribed(
    server: MailcueServer, account: Account, mailbox: str | None, probe: str
) -> AsyncIterator[Changes]:
    """mailChanges with the token in connection_init (as a browser sends it), once live
    (``probe``: a mailbox the account may read)."""
    changes = Changes()
    async with websockets.connect(
        ws_url(server), subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        auth = {"Authorization": f"Bearer {account.access_token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
        async with asyncio.timeout(WAIT):
            assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": MAIL_CHANGES, "variables": {"mailbox": mailbox}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))

        async def read() -> None:
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "next":
                    if message["payload"].get("errors"):
                        changes.errors += message["payload"]["errors"]
                    else:
                        await changes.queue.put(message["payload"]["data"]["mailChanges"])
                elif message["type"] == "error":
                    changes.errors += message["payload"]

        reader = asyncio.create_task(read())
        try:
            await _until_live(server, changes, probe)
            yield changes
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _until_live(server: MailcueServer, changes: Changes, mailbox: str) -> None:
    """Publish probes until one comes through: the subscription is then live."""
    assert server.bus is not None
    async with asyncio.timeout(WAIT):
        while True:
            await server.bus.publish(Event(EventType.FOLDER_CHANGED, mailbox, "probe"))
            try:
                got = await asyncio.wait_for(changes.queue.get(), 0.2)
            except TimeoutError:
                continue
            if got["kind"] == "FOLDER_CHANGED":
                while not changes.queue.empty():  # later probes
                    changes.queue.get_nowait()
                return


async def test_a_list_applies_each_change_without_fetching(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user, stranger = await new_user(http), await new_user(http)
    box = await owned_mailbox(server, user, "live")
    theirs = await owned_mailbox(server, stranger, "not-mine")
    async with subscribed(server, user, None, box) as changes:
        await deliver(server, theirs, ["someone else's"])
        await deliver(server, box, ["hello live"], attach=True)

        received = await changes.next()
        assert received["kind"] == "RECEIVED"  # the stranger's mail was never shown
        assert (received["mailbox"], received["folder"]) == (box, "INBOX")
        row = received["row"]
        assert row["subject"] == "hello live" and row["hasAttachments"] is True
        assert row["flags"] == [] and row["isRead"] is False and row["preview"]
        # The same row as the list query shows for it.
        page = await data(http, user, FOLDER_PAGE, mailbox=box, first=1)
        node = page["emailConnection"]["edges"][0]["node"]
        assert {name: row[name] for name in node} == node
        uid = row["uid"]

        seen = await gql(
            http,
            user,
            "mutation ($m: String!, $u: String!) "
            "{ setEmailSeen(mailbox: $m, uid: $u, seen: true) { __typename } }",
            m=box,
            u=uid,
        )
        assert seen["data"]["setEmailSeen"]["__typename"] == "EmailChange"
        flagged = await changes.next("FLAGS_CHANGED")
        assert (flagged["uid"], flagged["flags"], flagged["isRead"]) == (
            int(uid),
            ["\\Seen"],
            True,
        )

        await gql(
            http,
            user,
            "mutation ($m: String!, $u: String!) { markEmailSpam(mailbox: $m, uid: $u) "
            "{ __typename } }",
            m=box,
            u=uid,
        )
        moved = await changes.next("MOVED")
        assert (moved["fromFolder"], moved["fromUid"], moved["folder"]) == (
            "INBOX",
            int(uid),
            "Junk",
        )
        assert moved["row"]["subject"] == "hello live" and moved["row"]["folder"] == "Junk"
        assert moved["row"]["isRead"] is True

        await gql(
            http,
            user,
            "mutation ($m: String!, $u: String!) "
            '{ deleteEmail(mailbox: $m, uid: $u, folder: "Junk") { __typename } }',
            m=box,
            u=moved["row"]["uid"],
        )
        deleted = await changes.next("DELETED")
        assert (deleted["mailbox"], deleted["folder"], deleted["uid"]) == (
            box,
            "Junk",
            int(moved["row"]["uid"]),
        )
        assert deleted["row"] is None

        name = f"made-{new_address('x').split('@')[0]}"
        created = await gql(
            http,
            user,
            "mutation ($n: String!, $p: String!) { createMailbox(input: "
            "{username: $n, password: $p}) { __typename ... on Mailbox { id address } } }",
            n=name,
            p=PASSWORD + "-mailbox",
        )
        made = created["data"]["createMailbox"]
        assert made["__typename"] == "Mailbox", created
        appeared = await changes.next("MAILBOX_CREATED")
        assert (appeared["mailbox"], appeared["mailboxId"]) == (made["address"], made["id"])

        await gql(
            http,
            user,
            "mutation ($a: String!) { deleteMailbox(address: $a) { __typename } }",
            a=made["address"],
        )
        gone = await changes.next("MAILBOX_DELETED")
        assert gone["mailbox"] == made["address"]
        assert changes.errors == []
