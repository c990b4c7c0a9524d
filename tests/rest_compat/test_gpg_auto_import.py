"""MAILCUE_GPG_AUTO_IMPORT: a key attached to received mail becomes a contact key when read."""

from __future__ import annotations

import asyncio
import secrets
import smtplib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from accounts import Account, new_user
from conftest import node_settings
from gpg_home import GnuPG
from mailcue_server.app import MailcueServer


@pytest_asyncio.fixture(scope="module")
async def importing_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    node = MailcueServer(
        node_settings(tmp_path_factory.mktemp("autoimport"), gpg_auto_import=True)
    )
    await node.start()
    yield node
    await node.stop()


@pytest_asyncio.fixture
async def client(importing_node: MailcueServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=importing_node.http_url, timeout=30) as http:
        yield http


async def owned_mailbox(http: httpx.AsyncClient, owner: Account) -> str:
    made = await http.post(
        "/api/v1/mailboxes",
        headers=owner.headers,
        json={"username": f"ai{secrets.token_hex(3)}", "password": "auto-import-1"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["address"])


def mail_with_key(sender: str, to: str, armored: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, "my key"
    message.set_content("Here is my public key.\n")
    message.add_attachment(
        armored.encode(), maintype="application", subtype="pgp-keys", filename="key.asc"
    )
    return message.as_bytes(policy=SMTP)


async def test_a_key_attached_to_read_mail_is_imported(
    importing_node: MailcueServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    correspondent = f"friend-{secrets.token_hex(3)}@example.org"
    with GnuPG(tmp_path) as gpg:
        fingerprint = await asyncio.to_thread(gpg.generate, f"Friend <{correspondent}>")
        armored = await asyncio.to_thread(gpg.export, correspondent)
    owner = await new_user(client)
    address = await owned_mailbox(client, owner)

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", importing_node.port("smtp")) as smtp:
            smtp.sendmail(correspondent, [address], mail_with_key(correspondent, address, armored))

    await asyncio.to_thread(deliver)
    keys = await client.get("/api/v1/gpg/keys", headers=owner.headers)
    assert correspondent not in keys.text  # nothing before the mail is read
    listing = await client.get(
        "/api/v1/emails", headers=owner.headers, params={"mailbox": address}
    )
    uid = listing.json()["emails"][0]["uid"]
    detail = await client.get(
        f"/api/v1/emails/{uid}", headers=owner.headers, params={"mailbox": address}
    )
    assert detail.status_code == 200
    keys = await client.get("/api/v1/gpg/keys", headers=owner.headers)
    found = [k for k in keys.json()["keys"] if k["mailbox_address"] == correspondent]
    assert [k["fingerprint"] for k in found] == [fingerprint]
    assert "PRIVATE KEY" not in keys.text
