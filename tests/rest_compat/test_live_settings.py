"""Settings that apply while the server runs (the size limit, the catch-all, the relay's TLS
mode and CA file), on this node and the others."""

from __future__ import annotations

import asyncio
import imaplib
import secrets
import smtplib
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from accounts import PASSWORD, admin, graphql, new_user
from certs import TestCa, new_key
from mailcue_server.app import MailcueServer
from mailcue_server.config import RelayTls
from mailcue_server.store import aliases, mailboxes, message_queries
from mailcue_server.store import settings as stored

SETTINGS = "/api/v1/system/settings"
DEFAULT_SIZE = 25 * 1024 * 1024


def smtp_size_and_reply(port: int, body_bytes: int) -> tuple[str, int]:
    """EHLO's SIZE line, and the reply to a message of about ``body_bytes``."""
    raw = b"Subject: size\r\n\r\n" + (b"x" * 78 + b"\r\n") * (body_bytes // 80)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        size = f"SIZE {client.esmtp_features['size']}"
        try:
            client.sendmail("a@client.test", ["big@mailcue.local"], raw)
        except smtplib.SMTPException as refused:
            return size, int(getattr(refused, "smtp_code", 0))
        return size, 250


def imap_limit_and_append(port: int, address: str, size: int) -> tuple[str, str]:
    """The APPENDLIMIT capability after login, and how an APPEND of ``size`` bytes ends."""
    message = b"Subject: append\r\n\r\n" + (b"y" * 78 + b"\r\n") * (size // 80)
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as client:
        client.login(address, PASSWORD)
        _, lines = client.capability()  # imaplib keeps only the pre-login list
        listed = b" ".join(line for line in lines if isinstance(line, bytes)).decode().split()
        limit = next((c for c in listed if c.startswith("APPENDLIMIT=")), "")
        try:
            status, _ = client.append("INBOX", None, None, message)
        except imaplib.IMAP4.error:
            status = "NO"
        client.logout()
    return limit, status


async def restore(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    reset = await http.put(SETTINGS, headers=boss.headers, json={"max_message_size": DEFAULT_SIZE})
    assert reset.status_code == 200, reset.text


async def test_a_new_size_limit_applies_to_new_connections_without_restart(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    before = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 8000)
    assert before == (f"SIZE {DEFAULT_SIZE}", 250)
    try:
        saved = await http.put(SETTINGS, headers=boss.headers, json={"max_message_size": 4096})
        assert saved.status_code == 200, saved.text
        assert saved.json()["max_message_size"] == 4096
        assert "max_message_size" not in saved.json()["restart_required"]
        small = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 1000)
        big = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 8000)
        assert (small, big) == (("SIZE 4096", 250), ("SIZE 4096", 552))
    finally:
        await restore(http)
    assert await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 8000) == before


async def test_a_change_saved_by_another_node_is_picked_up_by_the_sync(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.settings_sync is not None and server.bus is not None
    address = f"limits-{secrets.token_hex(3)}@mailcue.local"
    await mailboxes.create_mailbox(address, bus=server.bus, password=PASSWORD)
    # Another node's PUT writes the same rows; this node learns of it by reading them.
    await stored.save_system({"max_message_size": 6000})
    try:
        assert await server.settings_sync.run_once() is True
        assert await server.settings_sync.run_once() is False  # nothing new the second time
        size, _ = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 100)
        assert size == "SIZE 6000"
        imap = server.port("imap")
        fits = await asyncio.to_thread(imap_limit_and_append, imap, address, 5000)
        too_big = await asyncio.to_thread(imap_limit_and_append, imap, address, 7000)
        assert (fits, too_big) == (("APPENDLIMIT=6000", "OK"), ("APPENDLIMIT=6000", "NO"))
    finally:
        await restore(http)


@pytest.mark.parametrize("value", [0, 1023, 2**31])
async def test_an_out_of_range_size_is_400_and_changes_nothing(
    server: MailcueServer, http: httpx.AsyncClient, value: int
) -> None:
    boss = await admin(http)
    refused = await http.put(SETTINGS, headers=boss.headers, json={"max_message_size": value})
    assert refused.status_code == 400, refused.text
    size, _ = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 100)
    assert size == f"SIZE {DEFAULT_SIZE}"


async def test_a_user_cannot_change_the_size_limit(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    refused = await http.put(SETTINGS, headers=user.headers, json={"max_message_size": 2048})
    assert refused.status_code == 403, refused.text
    size, _ = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 100)
    assert size == f"SIZE {DEFAULT_SIZE}"


# --- the catch-all --------------------------------------------------------------------------

CATCH_ALL_SETTINGS = """
mutation Catch($on: Boolean!) {
  updateSystemSettings(input: {catchAllEnabled: $on}) {
    __typename
    ... on ServerSettings { catchAllEnabled }
    ... on OperationError { code message }
  }
}
"""


def rcpt_replies(port: int, recipients: list[str]) -> list[tuple[int, str]]:
    """Each recipient's RCPT reply (code, text) in one SMTP session, then the message sent
    to those accepted (if any)."""
    replies: list[tuple[int, str]] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        client.mail("tester@client.test")
        for address in recipients:
            code, text = client.rcpt(address)
            replies.append((code, text.decode()))
        if any(code == 250 for code, _ in replies):
            code, _ = client.data(b"Subject: catch-all\r\n\r\nhello\r\n")
            assert code == 250
    return replies


async def set_catch_all(http: httpx.AsyncClient, on: bool) -> dict[str, object]:
    boss = await admin(http)
    saved = await http.put(SETTINGS, headers=boss.headers, json={"catch_all_enabled": on})
    assert saved.status_code == 200, saved.text
    body: dict[str, object] = saved.json()
    return body


async def inbox_total(address: str) -> int:
    return (await message_queries.list_page(address)).total


async def test_catch_all_off_refuses_unknown_recipients_and_on_accepts_them_again(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.bus is not None
    tag = secrets.token_hex(3)
    known = f"known-{tag}@mailcue.local"
    await mailboxes.create_mailbox(known, bus=server.bus)
    team = f"team-{tag}@elsewhere.test"
    await aliases.create_alias(team, [known])
    unknown = f"unknown-{tag}@mailcue.local"
    remote = f"stranger-{tag}@any-domain.test"
    boss = await admin(http)
    try:
        body = await set_catch_all(http, False)
        assert body["catch_all_enabled"] is False and body["restart_required"] == []
        shown = await http.get(SETTINGS, headers=boss.headers)
        assert shown.json()["catch_all_enabled"] is False

        replies = await asyncio.to_thread(
            rcpt_replies, server.port("smtp"), [known, unknown, team, remote]
        )

        assert [code for code, _ in replies] == [250, 550, 250, 550]
        assert replies[1][1].startswith("5.1.1") and replies[3][1].startswith("5.1.1")
        assert await inbox_total(known) == 1  # itself and through the alias: one copy
        assert await mailboxes.find_mailbox(unknown) is None
        assert await mailboxes.find_mailbox(remote) is None

        back_on = await set_catch_all(http, True)
        assert back_on["catch_all_enabled"] is True
        accepted = await asyncio.to_thread(rcpt_replies, server.port("smtp"), [unknown, remote])
        assert [code for code, _ in accepted] == [250, 250]
        assert await inbox_total(unknown) == 1 and await inbox_total(remote) == 1
    finally:
        await set_catch_all(http, True)


async def test_catch_all_over_graphql_and_from_another_node(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.settings_sync is not None
    boss, user = await admin(http), await new_user(http)
    first, second = (f"g{n}-{secrets.token_hex(3)}@mailcue.local" for n in (1, 2))
    try:
        off = await graphql(http, boss, CATCH_ALL_SETTINGS, on=False)
        assert off["data"]["updateSystemSettings"] == {
            "__typename": "ServerSettings",
            "catchAllEnabled": False,
        }
        denied = await graphql(http, user, CATCH_ALL_SETTINGS, on=True)
        assert denied["data"]["updateSystemSettings"]["code"] == "FORBIDDEN"
        replies = await asyncio.to_thread(rcpt_replies, server.port("smtp"), [first])
        assert replies[0][0] == 550

        on = await graphql(http, boss, CATCH_ALL_SETTINGS, on=True)
        assert on["data"]["updateSystemSettings"]["catchAllEnabled"] is True
        assert (await asyncio.to_thread(rcpt_replies, server.port("smtp"), [first]))[0][0] == 250

        # Another node's PUT writes the shared row; this node follows at its next sync.
        await stored.save_system({"catch_all": False})
        assert await server.settings_sync.run_once() is True
        assert (await asyncio.to_thread(rcpt_replies, server.port("smtp"), [second]))[0][0] == 550
    finally:
        await set_catch_all(http, True)
    assert (await asyncio.to_thread(rcpt_replies, server.port("smtp"), [second]))[0][0] == 250


# --- the relay's TLS mode and CA file -------------------------------------------------------

RELAY_TLS_SETTINGS = """
mutation Relay($tls: String!, $ca: String!) {
  updateSystemSettings(input: {relayTls: $tls, outboundCaFile: $ca}) {
    __typename
    ... on ServerSettings { relayTls outboundCaFile restartRequired }
    ... on OperationError { code message }
  }
}
"""


async def test_relay_tls_and_ca_file_change_while_running_on_every_node(
    server: MailcueServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert server.services is not None and server.settings_sync is not None
    ca = TestCa(tmp_path)
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(
        new_key().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    boss = await admin(http)
    try:
        saved = await http.put(
            SETTINGS,
            headers=boss.headers,
            json={"relay_tls": "TLS", "outbound_ca_file": f" {ca.ca_file} "},
        )
        assert saved.status_code == 200, saved.text
        body = saved.json()
        assert (body["relay_tls"], body["outbound_ca_file"]) == ("tls", str(ca.ca_file))
        assert body["restart_required"] == []
        # What the outbound worker reads before each attempt (MailcueServer._live_settings).
        live = server.services.settings
        assert (live.relay_tls, live.outbound_ca_file) == (RelayTls.TLS, str(ca.ca_file))

        for bad, reason in ((not_pem, "holds no PEM certificate"), (key_only, "no PEM cert")):
            refused = await http.put(
                SETTINGS, headers=boss.headers, json={"outbound_ca_file": str(bad)}
            )
            assert refused.status_code == 400, refused.text
            assert reason in refused.json()["detail"]
        assert server.services.settings.outbound_ca_file == str(ca.ca_file)

        cleared = await graphql(http, boss, RELAY_TLS_SETTINGS, tls="none", ca="")
        assert cleared["data"]["updateSystemSettings"] == {
            "__typename": "ServerSettings",
            "relayTls": "none",
            "outboundCaFile": None,
            "restartRequired": [],
        }
        wrong = await graphql(http, boss, RELAY_TLS_SETTINGS, tls="smtps", ca="")
        assert wrong["data"]["updateSystemSettings"]["code"] == "INVALID"
        assert server.services.settings.relay_tls is RelayTls.NONE

        # Another node saved these rows; this node follows them at its next sync.
        await stored.save_system({"relay_tls": "starttls", "outbound_ca_file": str(ca.ca_file)})
        assert await server.settings_sync.run_once() is True
        live = server.services.settings
        assert (live.relay_tls, live.outbound_ca_file) == (RelayTls.STARTTLS, str(ca.ca_file))
    finally:
        reset = await http.put(
            SETTINGS, headers=boss.headers, json={"relay_tls": "starttls", "outbound_ca_file": ""}
        )
        assert reset.status_code == 200, reset.text


# --- the relay's login ---------------------------------------------------------------------


async def test_relay_login_is_live_sealed_at_rest_and_never_shown_back(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    boss = await admin(http)
    assert server.services is not None and server.settings_sync is not None

    saved = await http.put(
        SETTINGS,
        headers=boss.headers,
        json={"relay_username": "relay-user", "relay_password": "s3cret-relay"},
    )

    assert saved.status_code == 200, saved.text
    assert (saved.json()["relay_username"], saved.json()["relay_password_set"]) == (
        "relay-user",
        True,
    )
    assert "s3cret-relay" not in saved.text
    assert "s3cret-relay" not in (await http.get(SETTINGS, headers=boss.headers)).text
    live = server.services.settings
    assert (live.relay_username, live.relay_password) == ("relay-user", "s3cret-relay")
    stored_password = (await stored.saved_system())["relay_password"]
    assert stored_password and "s3cret-relay" not in stored_password

    # Another node saves a new password, sealed under the cluster's secret: this one follows.
    box = stored.settings_box(server.services.secret_key)
    await stored.save_system({"relay_password": box.seal("rotated-relay")})
    assert await server.settings_sync.run_once() is True
    assert server.services.settings.relay_password == "rotated-relay"

    for bad in ({"relay_username": "a\r\nMAIL FROM"}, {"relay_password": "x\x00y"}):
        refused = await http.put(SETTINGS, headers=boss.headers, json=bad)
        assert refused.status_code == 400, refused.text
    assert server.services.settings.relay_password == "rotated-relay"

    cleared = await http.put(
        SETTINGS, headers=boss.headers, json={"relay_username": "", "relay_password": ""}
    )
    assert (cleared.json()["relay_username"], cleared.json()["relay_password_set"]) == (
        None,
        False,
    )
    assert (server.services.settings.relay_username, server.services.settings.relay_password) == (
        "",
        "",
    )


async def test_a_user_cannot_see_or_set_the_relay_login(http: httpx.AsyncClient) -> None:
    user = await new_user(http)

    refused = await http.put(SETTINGS, headers=user.headers, json={"relay_password": "mine"})

    assert refused.status_code == 403
