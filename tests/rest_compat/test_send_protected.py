"""POST /emails/send with GPG and DKIM, read back through GET /emails/{uid} as a user would."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx

from accounts import Account, admin, new_user
from mailcue_server.mail import dkim

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


async def mailbox(http: httpx.AsyncClient, owner: Account, domain: str = "example.test") -> str:
    response = await http.post(
        "/api/v1/mailboxes",
        headers=owner.headers,
        json={"username": f"p{secrets.token_hex(4)}", "password": "protected-1", "domain": domain},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["address"])


async def only_email(
    http: httpx.AsyncClient, owner: Account, address: str, folder: str = "INBOX"
) -> dict[str, Any]:
    listing = await http.get(
        "/api/v1/emails", headers=owner.headers, params={"mailbox": address, "folder": folder}
    )
    [summary] = listing.json()["emails"]
    detail = await http.get(
        f"/api/v1/emails/{summary['uid']}",
        headers=owner.headers,
        params={"mailbox": address, "folder": folder},
    )
    assert detail.status_code == 200, detail.text
    result: dict[str, Any] = detail.json()
    return result


async def test_signed_and_encrypted_send_reads_back_decrypted(http: httpx.AsyncClient) -> None:
    writer, reader = await new_user(http), await new_user(http)
    sender, recipient = await mailbox(http, writer), await mailbox(http, reader)
    for owner, address in ((writer, sender), (reader, recipient)):
        made = await http.post(
            "/api/v1/gpg/keys/generate",
            headers=owner.headers,
            json={"mailbox_address": address, "algorithm": "ECC"},
        )
        assert made.status_code == 201, made.text
    # The writer encrypts to the reader: the reader's public key must be known to the writer.
    public = (
        await http.get(f"/api/v1/gpg/keys/{recipient}/export", headers=reader.headers)
    ).json()["public_key"]
    imported = await http.post(
        "/api/v1/gpg/keys/import", headers=writer.headers, json={"armored_key": public}
    )
    assert imported.status_code in (200, 201), imported.text
    sent = await http.post(
        "/api/v1/emails/send",
        headers=writer.headers,
        json={
            "from_address": sender,
            "to_addresses": [recipient],
            "subject": "Sealed",
            "body": "<p>The code is <b>4711</b></p>",
            "body_type": "html",
            "attachments": [
                {"filename": "pixel.png", "content_type": "image/png",
                 "data": base64.b64encode(PNG).decode()},
            ],
            "sign": True,
            "encrypt": True,
        },
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    detail = await only_email(http, reader, recipient)
    assert detail["gpg"]["is_encrypted"] and detail["gpg"]["decrypted"]
    assert detail["gpg"]["is_signed"] and detail["gpg"]["signature_status"] == "valid"
    assert "<b>4711</b>" in detail["html_body"]
    [part] = detail["attachments"]
    assert part["filename"] == "pixel.png"
    download = await http.get(
        f"/api/v1/emails/{detail['uid']}/attachments/{part['part_id']}",
        headers=reader.headers,
        params={"mailbox": recipient},
    )
    assert download.content == PNG
    raw = await http.get(
        f"/api/v1/emails/{detail['uid']}/raw",
        headers=reader.headers,
        params={"mailbox": recipient},
    )
    assert b"multipart/encrypted" in raw.content and b"4711" not in raw.content
    own_copy = await only_email(http, writer, sender, folder="Sent")
    assert own_copy["gpg"]["decrypted"] and "<b>4711</b>" in own_copy["html_body"]


async def test_encrypting_to_an_address_without_a_key_sends_nothing(
    http: httpx.AsyncClient,
) -> None:
    writer = await new_user(http)
    sender = await mailbox(http, writer)
    stranger = f"nokey-{secrets.token_hex(3)}@example.test"
    refused = await http.post(
        "/api/v1/emails/send",
        headers=writer.headers,
        json={"from_address": sender, "to_addresses": [stranger], "subject": "s", "body": "b",
              "encrypt": True},
    )  # fmt: skip
    assert refused.status_code == 400
    assert stranger in refused.json()["detail"]
    boss = await admin(http)
    listed = await http.get("/api/v1/mailboxes", headers=boss.headers)
    assert stranger not in [m["address"] for m in listed.json()["mailboxes"]]


async def test_mail_from_a_managed_domain_is_dkim_signed(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    domain = f"signed{secrets.token_hex(3)}.test"
    made = await http.post("/api/v1/domains", headers=boss.headers, json={"name": domain})
    assert made.status_code == 201, made.text
    record = next(r for r in made.json()["dns_records"] if "_domainkey" in r["hostname"])
    sender = await mailbox(http, boss, domain)
    recipient = await mailbox(http, boss)
    sent = await http.post(
        "/api/v1/emails/send",
        headers=boss.headers,
        json={"from_address": sender, "to_addresses": [recipient], "subject": "Signed",
              "body": "hello"},
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    detail = await only_email(http, boss, recipient)
    raw = (
        await http.get(
            f"/api/v1/emails/{detail['uid']}/raw",
            headers=boss.headers,
            params={"mailbox": recipient},
        )
    ).content

    def lookup(name: str) -> str | None:
        return record["expected_value"] if name == record["hostname"].rstrip(".") else None

    # Our Received header sits above the signature; DKIM ignores fields it did not sign.
    assert dkim.verify(raw, lookup).result.value == "pass"
    tampered = raw.replace(b"hello", b"hellO")
    assert dkim.verify(tampered, lookup).result.value == "fail"
    unsigned = await mailbox(http, boss)
    plain = await http.post(
        "/api/v1/emails/send",
        headers=boss.headers,
        json={"from_address": unsigned, "to_addresses": [recipient], "subject": "x", "body": "y"},
    )
    assert plain.status_code == 202
