"""GPG keys over REST and GraphQL, the keyserver, and PGP/MIME mail, against the real gpg."""

from __future__ import annotations

import asyncio
import secrets
import smtplib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from mailcue import AsyncMailcue

from accounts import Account, admin, new_api_key, new_user
from conftest import node_settings
from gpg_home import OUTSIDE, OUTSIDE_ADDRESS, GnuPG, outside_keyring
from mailcue_server.app import MailcueServer
from mailcue_server.errors import Invalid
from mailcue_server.mail.compose import Compose, build_message
from mailcue_server.mail.mime import parse_detail
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.resolvers.pgp_mail import import_offered_keys, pgp_protect, pgp_reading
from mailcue_server.schema.types.gpg import SignatureStatus
from mailcue_server.store import mailboxes, message_queries
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.gpg_models import GpgKey
from mailcue_server.store.mail_models import INBOX, Mailbox
from vks_stub import KEYSERVER_TIMEOUT, VksStub

KEYS = "/api/v1/gpg/keys"


@pytest.fixture(scope="module")
def vks() -> Iterator[VksStub]:
    stub = VksStub()
    yield stub
    stub.close()


@pytest_asyncio.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, vks: VksStub
) -> AsyncIterator[MailcueServer]:
    """This module's node publishes to the stub keyserver, with a short deadline."""
    settings = node_settings(
        tmp_path_factory.mktemp("mailcue"),
        keyserver_url=vks.url,
        keyserver_timeout=KEYSERVER_TIMEOUT,
    )
    node = MailcueServer(settings)
    await node.start()
    yield node
    await node.stop()


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnuPG]:
    yield from outside_keyring(tmp_path_factory.mktemp("gnupg"))


@pytest.fixture(autouse=True)
def keyserver_behaves(vks: VksStub) -> None:
    vks.mode = "ok"


async def own_mailbox(server: MailcueServer, owner: Account, name: str) -> str:
    assert server.bus is not None
    address = f"{name}-{secrets.token_hex(3)}@mailcue.test"
    await mailboxes.create_mailbox(address, bus=server.bus, owner_id=owner.user["id"])
    return address


def context(server: MailcueServer, account: Account) -> Context:
    """The resolver context a request of ``account`` gets."""
    assert server.services is not None
    principal = Principal(
        user_id=UUID(account.user["id"]), username=account.username, is_admin=False
    )
    return Context(services=server.services, principal=principal)


async def generate(
    http: httpx.AsyncClient, owner: Account, address: str, **body: Any
) -> dict[str, Any]:
    response = await http.post(
        f"{KEYS}/generate", headers=owner.headers, json={"mailbox_address": address, **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def import_key(
    http: httpx.AsyncClient, owner: Account, armored: str, **body: Any
) -> httpx.Response:
    return await http.post(
        f"{KEYS}/import", headers=owner.headers, json={"armored_key": armored, **body}
    )


async def gql(
    http: httpx.AsyncClient, owner: Account, query: str, **variables: Any
) -> httpx.Response:
    response = await http.post(
        "/graphql", headers=owner.headers, json={"query": query, "variables": variables}
    )
    assert response.status_code == 200, response.text
    return response


def colons(records: list[list[str]], kind: str) -> list[str]:
    return next(r for r in records if r[0] == kind)


async def test_generate_read_export_delete_and_import_again(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "alice")
    key = await generate(http, owner, address, name="Alice Tester")
    assert key["mailbox_address"] == address
    assert len(key["fingerprint"]) == 40 and key["key_id"] == key["fingerprint"][-16:]
    assert (key["uid_name"], key["uid_email"]) == ("Alice Tester", address)
    assert (key["algorithm"], key["key_length"]) == ("RSA", 2048)
    assert (key["is_private"], key["is_active"], key["expires_at"]) == (True, True, None)

    got = await http.get(f"{KEYS}/{address}", headers=owner.headers)
    assert got.status_code == 200 and got.json() == key

    exported = (await http.get(f"{KEYS}/{address}/export", headers=owner.headers)).json()
    assert exported["mailbox_address"] == address
    assert exported["fingerprint"] == key["fingerprint"]
    records = gpg.show(exported["public_key"])  # gpg reads the same key
    assert colons(records, "fpr")[9] == key["fingerprint"]
    pub = colons(records, "pub")
    assert (pub[3], pub[2], pub[4]) == ("1", "2048", key["key_id"])
    assert datetime.fromtimestamp(int(pub[5]), UTC) == datetime.fromisoformat(key["created_at"])
    assert colons(records, "uid")[9] == f"Alice Tester <{address}>"

    raw = await http.get(f"{KEYS}/{address}/export/raw", headers=owner.headers)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/pgp-keys")
    assert f'filename="{address}.asc"' in raw.headers["content-disposition"]
    assert raw.text == exported["public_key"]

    deleted = await http.delete(f"{KEYS}/{address}", headers=owner.headers)
    assert deleted.status_code == 204
    assert (await http.get(f"{KEYS}/{address}", headers=owner.headers)).status_code == 404
    assert (await http.get(f"{KEYS}/{address}/export", headers=owner.headers)).status_code == 404
    assert (await http.delete(f"{KEYS}/{address}", headers=owner.headers)).status_code == 404

    # The .asc round-trips: imported again it is the same key, now without its private half.
    again = await import_key(http, owner, raw.text)
    assert again.status_code == 201, again.text
    body = again.json()
    assert (body["fingerprint"], body["key_id"], body["created_at"]) == (
        key["fingerprint"],
        key["key_id"],
        key["created_at"],
    )
    assert body["mailbox_address"] == address and body["is_private"] is False


async def test_ecc_with_an_expiry(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "ecc")
    key = await generate(http, owner, address, algorithm="ECC", expire="1y")
    assert (key["algorithm"], key["key_length"], key["uid_name"]) == ("EdDSA", 255, "MailCue User")
    expires = datetime.fromisoformat(key["expires_at"])
    created = datetime.fromisoformat(key["created_at"])
    assert abs(expires - created - timedelta(days=365)) < timedelta(seconds=5)
    exported = (await http.get(f"{KEYS}/{address}/export", headers=owner.headers)).json()
    records = gpg.show(exported["public_key"])
    pub, sub = colons(records, "pub"), colons(records, "sub")
    assert (pub[3], pub[2], pub[16]) == ("22", "255", "ed25519")
    assert (sub[3], sub[11], sub[16]) == ("18", "e", "cv25519")
    assert datetime.fromtimestamp(int(pub[6]), UTC) == expires


async def test_generate_refuses_bad_requests(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "picky")
    for body, words in (
        ({"key_length": 1024}, "key_length"),
        ({"algorithm": "DSA"}, "RSA or ECC"),
        ({"expire": "whenever"}, "expire"),
        ({"expire": "2001-01-01"}, "future"),
        ({"name": "Eve <eve@example.org>"}, "name"),
    ):
        response = await http.post(
            f"{KEYS}/generate", headers=owner.headers, json={"mailbox_address": address, **body}
        )
        assert response.status_code == 400, body
        assert words in response.json()["detail"]
    stranger = await new_user(http)
    response = await http.post(
        f"{KEYS}/generate", headers=stranger.headers, json={"mailbox_address": address}
    )
    assert response.status_code == 404
    await generate(http, owner, address)
    second = await http.post(
        f"{KEYS}/generate", headers=owner.headers, json={"mailbox_address": address}
    )
    assert second.status_code == 409 and "already has" in second.json()["detail"]
    assert (
        await http.post(f"{KEYS}/generate", json={"mailbox_address": address})
    ).status_code == (401)


async def test_a_key_made_by_gpg_imports(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG, tmp_path: Path
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "carol")
    fingerprint = gpg.generate(f"Carol <{address}>", "rsa3072")
    public = await import_key(http, owner, gpg.export(address))  # the address from the user id
    assert public.status_code == 201, public.text
    key = public.json()
    records = gpg.show(gpg.export(address))
    assert key["fingerprint"] == fingerprint and key["key_id"] == fingerprint[-16:]
    assert (key["algorithm"], key["key_length"]) == ("RSA", 3072)
    assert (key["uid_name"], key["uid_email"], key["mailbox_address"]) == (
        "Carol",
        address,
        address,
    )
    assert int(datetime.fromisoformat(key["created_at"]).timestamp()) == int(
        colons(records, "pub")[5]
    )
    assert key["is_private"] is False

    # The same key with its secret half: the same row, now private.
    private = await import_key(http, owner, gpg.export_secret(address))
    assert private.status_code == 201, private.text
    assert private.json()["id"] == key["id"] and private.json()["is_private"] is True
    assert "PRIVATE KEY" not in private.text

    # Another key for an address that has one is refused.
    with GnuPG(tmp_path) as other:
        other.generate(f"Impostor <{address}>")
        clash = await import_key(http, owner, other.export(address))
    assert clash.status_code == 409 and fingerprint in clash.json()["detail"]


async def test_import_refusals(http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG) -> None:
    owner = await new_user(http)
    for armored, words in (
        ("not a key", "armored"),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----",
            "readable",
        ),
        (gpg.export_secret(OUTSIDE_ADDRESS), "one of your mailboxes"),
    ):
        response = await import_key(http, owner, armored)
        assert response.status_code == 400, armored
        assert words in response.json()["detail"]
    gpg.generate("Nameless Wonder")
    no_email = await import_key(http, owner, gpg.export("Nameless Wonder"))
    assert no_email.status_code == 400 and "mailbox_address" in no_email.json()["detail"]
    given = await import_key(
        http, owner, gpg.export("Nameless Wonder"), mailbox_address="nameless@example.org"
    )
    assert given.status_code == 201 and given.json()["mailbox_address"] == "nameless@example.org"
    bad_address = await import_key(
        http, owner, gpg.export(OUTSIDE_ADDRESS), mailbox_address="not an address"
    )
    assert bad_address.status_code == 400


async def test_contact_keys_belong_to_their_importer(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG
) -> None:
    alice, bob = await new_user(http), await new_user(http)
    alice_box = await own_mailbox(server, alice, "owned")
    mine = await generate(http, alice, alice_box, algorithm="ECC")
    imported = await import_key(http, alice, gpg.export(OUTSIDE_ADDRESS))
    assert imported.status_code == 201
    contact = imported.json()
    assert contact["mailbox_address"] == OUTSIDE_ADDRESS and contact["is_private"] is False

    listed = (await http.get(KEYS, headers=alice.headers)).json()
    assert {k["id"] for k in listed["keys"]} == {mine["id"], contact["id"]}
    assert listed["total"] == 2
    assert (await http.get(KEYS, headers=bob.headers)).json() == {"keys": [], "total": 0}
    # Bob sees neither Alice's mailbox key nor her contact key, and cannot remove them.
    for address in (alice_box, OUTSIDE_ADDRESS):
        assert (await http.get(f"{KEYS}/{address}", headers=bob.headers)).status_code == 404
        assert (await http.delete(f"{KEYS}/{address}", headers=bob.headers)).status_code == 404
        assert (await http.get(f"{KEYS}/{address}", headers=alice.headers)).status_code == 200
    # An admin sees every key.
    boss = await admin(http)
    every = (await http.get(KEYS, headers=boss.headers)).json()
    assert {mine["id"], contact["id"]} <= {k["id"] for k in every["keys"]}


async def test_api_key_scopes_and_allow_list(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    owner = await new_user(http)
    first = await own_mailbox(server, owner, "first")
    second = await own_mailbox(server, owner, "second")
    await generate(http, owner, first, algorithm="ECC")
    await generate(http, owner, second, algorithm="ECC")
    reader = {"X-API-Key": (await new_api_key(http, owner, scopes=["gpg:read"]))["key"]}
    assert (await http.get(KEYS, headers=reader)).json()["total"] == 2
    denied = await http.delete(f"{KEYS}/{first}", headers=reader)
    assert denied.status_code == 403 and "'gpg:write'" in denied.json()["detail"]
    mail_only = {"X-API-Key": (await new_api_key(http, owner, scopes=["email:read"]))["key"]}
    assert (await http.get(KEYS, headers=mail_only)).status_code == 403
    narrowed = await new_api_key(http, owner, scopes=["gpg:read"], allowed_mailboxes=[first])
    narrow = {"X-API-Key": narrowed["key"]}
    assert [
        k["mailbox_address"] for k in (await http.get(KEYS, headers=narrow)).json()["keys"]
    ] == [first]
    assert (await http.get(f"{KEYS}/{second}", headers=narrow)).status_code == 404


async def test_publish_to_the_keyserver(
    http: httpx.AsyncClient, server: MailcueServer, vks: VksStub
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "public")
    key = await generate(http, owner, address, algorithm="ECC")
    published = await http.post(f"{KEYS}/{address}/publish", headers=owner.headers)
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["published"] is True and body["key_fingerprint"] == key["fingerprint"]
    assert body["token"] and body["addresses"] == [{"address": address, "status": "pending"}]
    assert address in body["message"]
    assert vks.uploads[-1].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE" not in vks.uploads[-1]
    assert vks.verifications[-1]["addresses"] == [address]
    assert vks.verifications[-1]["token"] == body["token"]


@pytest.mark.parametrize(("mode", "status"), [("fail", 502), ("drop", 502), ("hang", 504)])
async def test_a_failing_keyserver_is_a_clear_gateway_error(
    http: httpx.AsyncClient, server: MailcueServer, vks: VksStub, mode: str, status: int
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "unlucky")
    await generate(http, owner, address, algorithm="ECC")
    vks.mode = mode
    started = time.monotonic()
    response = await http.post(f"{KEYS}/{address}/publish", headers=owner.headers)
    assert time.monotonic() - started < KEYSERVER_TIMEOUT * 3  # a deadline, never a hang
    assert response.status_code == status, response.text
    assert "keyserver" in response.json()["detail"]
    twin = await gql(
        http,
        owner,
        "mutation ($a: String!) { publishGpgKey(address: $a) { __typename "
        "... on OperationError { message } } }",
        a=address,
    )
    result = twin.json()["data"]["publishGpgKey"]
    assert result["__typename"] == "OperationError" and "keyserver" in result["message"]


async def test_fetch_from_the_keyserver(
    http: httpx.AsyncClient, server: MailcueServer, vks: VksStub, gpg: GnuPG
) -> None:
    owner = await new_user(http)
    fingerprint = gpg.generate("Far Away <far@example.net>")
    vks.published["far@example.net"] = gpg.export("far@example.net")
    fetched = await http.post(
        f"{KEYS}/fetch", headers=owner.headers, json={"address": "far@example.net"}
    )
    assert fetched.status_code == 201, fetched.text
    assert fetched.json()["fingerprint"] == fingerprint
    assert fetched.json()["mailbox_address"] == "far@example.net"
    missing = await http.post(
        f"{KEYS}/fetch", headers=owner.headers, json={"address": "nobody@example.net"}
    )
    assert missing.status_code == 404


GQL_KEY = "id mailboxAddress fingerprint keyId uidName uidEmail algorithm keyLength " + (
    "createdAt expiresAt isPrivate isActive"
)


async def test_graphql_twins(http: httpx.AsyncClient, server: MailcueServer) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "graph")
    made = await gql(
        http,
        owner,
        "mutation ($i: GpgGenerateInput!) { generateGpgKey(input: $i) { __typename "
        f"... on GpgKey {{ {GQL_KEY} }} ... on OperationError {{ code message }} }} }}",
        i={"mailboxAddress": address, "algorithm": "ECC"},
    )
    key = made.json()["data"]["generateGpgKey"]
    assert key["__typename"] == "GpgKey" and key["algorithm"] == "EdDSA" and key["isPrivate"]
    rest = (await http.get(f"{KEYS}/{address}", headers=owner.headers)).json()
    assert key["fingerprint"] == rest["fingerprint"] and key["keyLength"] == rest["key_length"]
    read = await gql(
        http,
        owner,
        f"query ($a: String!) {{ gpgKeys {{ total keys {{ fingerprint }} }} "
        f"gpgKey(address: $a) {{ {GQL_KEY} }} "
        "gpgKeyExport(address: $a) { mailboxAddress fingerprint publicKey } }",
        a=address,
    )
    data = read.json()["data"]
    assert data["gpgKeys"]["total"] == 1 and data["gpgKey"]["id"] == key["id"]
    assert data["gpgKeyExport"]["publicKey"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    again = await gql(
        http,
        owner,
        "mutation ($i: GpgGenerateInput!) { generateGpgKey(input: $i) { __typename "
        "... on OperationError { code message } } }",
        i={"mailboxAddress": address},
    )
    assert again.json()["data"]["generateGpgKey"]["code"] == "CONFLICT"
    gone = await gql(
        http,
        owner,
        "mutation ($a: String!) { deleteGpgKey(address: $a) { __typename } }",
        a=address,
    )
    assert gone.json()["data"]["deleteGpgKey"]["__typename"] == "Done"
    missing = await gql(
        http, owner, "query ($a: String!) { gpgKey(address: $a) { id } }", a=address
    )
    assert missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_the_official_sdk_parses_our_answers(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "sdk")
    key = (await new_api_key(http, owner))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        made = await client.gpg.generate(address, name="Sdk User", algorithm="ECC")
        assert made.mailbox_address == address and made.is_private
        listed = await client.gpg.list()
        assert listed.total == 1 and listed.keys[0].fingerprint == made.fingerprint
        assert (await client.gpg.get(address)).key_id == made.key_id
        exported = await client.gpg.export_public(address)
        assert exported.fingerprint == made.fingerprint
        imported = await client.gpg.import_key(gpg.export(OUTSIDE_ADDRESS))
        assert imported.mailbox_address == OUTSIDE_ADDRESS
        published = await client.gpg.publish(address)
        assert published.published and published.key_fingerprint == made.fingerprint
        await client.gpg.delete(address)
        assert (await client.gpg.list()).total == 1


async def test_no_route_or_field_returns_private_key_material(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG, vks: VksStub
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "secretive")
    other = await own_mailbox(server, owner, "imported")
    fingerprint = gpg.generate(f"Imported <{other}>")
    vks.published["far2@example.net"] = gpg.export(OUTSIDE_ADDRESS)
    answers: list[httpx.Response] = [
        await http.post(
            f"{KEYS}/generate", headers=owner.headers, json={"mailbox_address": address}
        ),
        await import_key(http, owner, gpg.export_secret(other)),
        await http.get(KEYS, headers=owner.headers),
        await http.post(
            f"{KEYS}/fetch", headers=owner.headers, json={"address": "far2@example.net"}
        ),
    ]
    for target in (address, other):
        answers += [
            await http.get(f"{KEYS}/{target}", headers=owner.headers),
            await http.get(f"{KEYS}/{target}/export", headers=owner.headers),
            await http.get(f"{KEYS}/{target}/export/raw", headers=owner.headers),
            await http.post(f"{KEYS}/{target}/publish", headers=owner.headers),
        ]
    answers.append(
        await gql(
            http,
            owner,
            f"query ($a: String!, $b: String!) {{ gpgKeys {{ keys {{ {GQL_KEY} }} }} "
            f"one: gpgKey(address: $a) {{ {GQL_KEY} }} two: gpgKey(address: $b) {{ {GQL_KEY} }} "
            "x: gpgKeyExport(address: $a) { publicKey } "
            "y: gpgKeyExport(address: $b) { publicKey } }",
            a=address,
            b=other,
        )
    )
    assert all(a.status_code < 300 for a in answers), [a.text for a in answers]
    assert sum(a.text.count("BEGIN PGP PUBLIC KEY BLOCK") for a in answers) >= 6
    for answer in answers:
        assert "PRIVATE KEY" not in answer.text, answer.request.url
    assert all("PRIVATE KEY" not in upload for upload in vks.uploads)

    # At rest the private key is sealed under the server secret, not stored as armor.
    assert server.services is not None
    box = SecretBox(server.services.secret_key, "gpg-private-key")
    for target in (address, other):
        row = await GpgKey.get(address=target)
        assert row.sealed_private_key is not None
        assert "PRIVATE KEY" not in row.sealed_private_key
        assert "PGP PRIVATE KEY BLOCK" in box.open(row.sealed_private_key)
    assert (await GpgKey.get(address=other)).fingerprint == fingerprint
    deleted = [await http.delete(f"{KEYS}/{t}", headers=owner.headers) for t in (address, other)]
    assert [d.status_code for d in deleted] == [204, 204] and all(not d.content for d in deleted)
    assert not await GpgKey.filter(address__in=[address, other]).exists()


def _message(sender: str, recipient: str, subject: str) -> bytes:
    return build_message(
        Compose(
            from_address=sender,
            to=(recipient,),
            subject=subject,
            text="The launch code is 0000.\n",
            html="<p>The launch code is <b>0000</b>.</p>",
        )
    ).raw


async def smtp_deliver(server: MailcueServer, raw: bytes, sender: str, recipient: str) -> bytes:
    """Deliver over SMTP; the stored copy as the recipient's INBOX holds it."""

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", server.port("smtp")) as client:
            client.sendmail(sender, [recipient], raw)

    await asyncio.to_thread(send)
    page = await message_queries.list_page(recipient, INBOX, offset=0, limit=1)
    assert page.total >= 1
    newest = page.messages[0]
    assert newest.is_encrypted or newest.is_signed  # from the index
    return await message_queries.raw_bytes(recipient, INBOX, newest.uid)


async def mailbox_of(address: str) -> Mailbox:
    found = await mailboxes.find_mailbox(address)
    assert found is not None
    return found


async def test_send_signed_and_encrypted_then_read(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    """pgp_protect (what send and inject call) and pgp_reading (what the detail calls)."""
    writer, reader = await new_user(http), await new_user(http)
    sender = await own_mailbox(server, writer, "sender")
    recipient = await own_mailbox(server, reader, "recipient")
    signer = await generate(http, writer, sender, algorithm="ECC")
    await generate(http, reader, recipient)
    raw = _message(sender, recipient, "Signed and sealed")
    protected = await pgp_protect(
        context(server, writer),
        raw,
        sender=sender,
        recipients=[recipient],
        sign=True,
        encrypt=True,
    )
    assert b"multipart/encrypted" in protected and b"launch code" not in protected
    stored = await smtp_deliver(server, protected, sender, recipient)

    reading = await pgp_reading(context(server, reader), stored, await mailbox_of(recipient))
    assert reading is not None
    info = reading.info
    assert (info.is_encrypted, info.decrypted, info.is_signed) == (True, True, True)
    assert info.signature_status is SignatureStatus.VALID
    assert info.signer_fingerprint == signer["fingerprint"]
    assert info.signer_key_id == signer["key_id"]
    assert info.signer_uid == f"MailCue User <{sender}>"
    assert len(info.encryption_key_ids) == 2  # the recipient and the sender
    assert reading.decrypted_message is not None
    detail = parse_detail(reading.decrypted_message)
    assert detail.subject == "Signed and sealed"
    assert detail.text_body == "The launch code is 0000.\n"
    assert detail.html_body == "<p>The launch code is <b>0000</b>.</p>\n"

    # The sender's own copy is readable with the sender's key.
    own = await pgp_reading(context(server, writer), protected, await mailbox_of(sender))
    assert own is not None and own.info.decrypted

    # Signed only: the signature over the exact part holds; one changed byte breaks it.
    signed = await pgp_protect(
        context(server, writer),
        raw,
        sender=sender,
        recipients=[recipient],
        sign=True,
        encrypt=False,
    )
    stored = await smtp_deliver(server, signed, sender, recipient)
    verdict = await pgp_reading(context(server, reader), stored, await mailbox_of(recipient))
    assert verdict is not None and verdict.info.signature_status is SignatureStatus.VALID
    tampered = stored.replace(b"launch code is 0000", b"launch code is 0001")
    verdict = await pgp_reading(context(server, reader), tampered, await mailbox_of(recipient))
    assert verdict is not None and verdict.info.signature_status is SignatureStatus.INVALID

    # Plain mail is not PGP.
    assert await pgp_reading(context(server, reader), raw, await mailbox_of(recipient)) is None

    # Deleting the recipient's key: encrypting to that address is refused, by name.
    assert (await http.delete(f"{KEYS}/{recipient}", headers=reader.headers)).status_code == 204
    with pytest.raises(Invalid, match=recipient):
        await pgp_protect(
            context(server, writer),
            raw,
            sender=sender,
            recipients=[recipient],
            sign=False,
            encrypt=True,
        )
    with pytest.raises(Invalid, match="no private GPG key"):
        await pgp_protect(
            context(server, reader),
            raw,
            sender=recipient,
            recipients=[sender],
            sign=True,
            encrypt=False,
        )
    # Nobody signs with another user's key (inject takes any From address).
    with pytest.raises(Invalid, match="not one of your mailboxes"):
        await pgp_protect(
            context(server, reader), raw, sender=sender, recipients=[], sign=True, encrypt=False
        )


async def test_what_gpg_sends_over_smtp_is_decrypted_and_verified(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG
) -> None:
    owner = await new_user(http)
    recipient = await own_mailbox(server, owner, "gpgreader")
    await generate(http, owner, recipient, algorithm="ECC")
    exported = (await http.get(f"{KEYS}/{recipient}/export", headers=owner.headers)).json()
    gpg.import_key(exported["public_key"])
    await import_key(http, owner, gpg.export(OUTSIDE_ADDRESS))  # the sender, known

    inner = (
        b"Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
        b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nFrom gpg, with love.\r\n"
        b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>From gpg</p>\r\n--alt--\r\n"
    )
    armored = gpg.sign_and_encrypt(inner, signer=OUTSIDE_ADDRESS, recipient=recipient).replace(
        b"\n", b"\r\n"
    )  # SMTP wants CRLF
    raw = (
        (
            f"From: {OUTSIDE}\r\nTo: {recipient}\r\nSubject: Hello from gpg\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
            " boundary=enc\r\n"
            "\r\n--enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
            "\r\n--enc\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + armored
        + b"\r\n--enc--\r\n"
    )
    stored = await smtp_deliver(server, raw, OUTSIDE_ADDRESS, recipient)
    reading = await pgp_reading(context(server, owner), stored, await mailbox_of(recipient))
    assert reading is not None and reading.decrypted_message is not None
    assert reading.info.decrypted and reading.info.signature_status is SignatureStatus.VALID
    assert reading.info.signer_fingerprint == gpg.fingerprint(OUTSIDE_ADDRESS)
    assert reading.info.signer_uid == OUTSIDE
    detail = parse_detail(reading.decrypted_message)
    assert (detail.subject, detail.text_body, detail.html_body) == (
        "Hello from gpg",
        "From gpg, with love.",  # the CRLF before a delimiter is the delimiter's
        "<p>From gpg</p>",
    )
    # Another user's mailbox does not know the signer: "no public key", with its fingerprint.
    stranger = await new_user(http)
    elsewhere = await own_mailbox(server, stranger, "stranger")
    await generate(http, stranger, elsewhere, algorithm="ECC")
    gpg.import_key(
        (await http.get(f"{KEYS}/{elsewhere}/export", headers=stranger.headers)).json()[
            "public_key"
        ]
    )
    armored = gpg.sign_and_encrypt(inner, signer=OUTSIDE_ADDRESS, recipient=elsewhere).replace(
        b"\n", b"\r\n"
    )
    stored = await smtp_deliver(
        server,
        raw.split(b"-----BEGIN")[0] + armored + b"\r\n--enc--\r\n",
        OUTSIDE_ADDRESS,
        elsewhere,
    )
    unknown = await pgp_reading(context(server, stranger), stored, await mailbox_of(elsewhere))
    assert unknown is not None and unknown.info.decrypted
    assert unknown.info.signature_status is SignatureStatus.NO_PUBLIC_KEY
    assert unknown.info.signer_fingerprint == gpg.fingerprint(OUTSIDE_ADDRESS)


async def test_keys_offered_by_mail_can_be_imported(
    http: httpx.AsyncClient, server: MailcueServer, gpg: GnuPG
) -> None:
    owner = await new_user(http)
    address = await own_mailbox(server, owner, "autocrypt")
    fingerprint = gpg.generate("Pen Pal <penpal@example.org>")
    raw = (
        b"From: penpal@example.org\r\nTo: " + address.encode() + b"\r\nSubject: my key\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
        b"--m\r\nContent-Type: text/plain\r\n\r\nHere is my key.\r\n"
        b'--m\r\nContent-Type: application/pgp-keys; name="penpal.asc"\r\n\r\n'
        + gpg.export("penpal@example.org").encode()
        + b"\r\n--m--\r\n"
    )
    imported = await import_offered_keys(context(server, owner), raw, await mailbox_of(address))
    assert [(k.mailbox_address, k.fingerprint) for k in imported] == [
        ("penpal@example.org", fingerprint)
    ]
    assert await import_offered_keys(context(server, owner), raw, await mailbox_of(address)) == []
    listed = (await http.get(KEYS, headers=owner.headers)).json()
    assert [k["mailbox_address"] for k in listed["keys"]] == ["penpal@example.org"]
