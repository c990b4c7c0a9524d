"""Domains over REST, GraphQL and the SDK: DKIM keys, the records to publish, MTA-STS, access.

The live DNS checks are in ``test_domains_dns.py`` (a real dnsmasq); these
tests need no DNS.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key
from mailcue import AsyncMailcue

from accounts import Account, admin, graphql, new_api_key, new_user
from mailcue_server.app import MailcueServer
from mailcue_server.mail.dkim import DkimKeyType
from mailcue_server.mail.dns_records import MtaStsMode, mta_sts_policy_id
from mailcue_server.store import domains
from mailcue_server.store.domain_models import Domain

DOMAINS = "/api/v1/domains"
POLICY = "/.well-known/mta-sts.txt"


def fresh() -> str:
    return f"z{secrets.token_hex(4)}.test"


async def create(http: httpx.AsyncClient, boss: Account, **body: Any) -> httpx.Response:
    return await http.post(DOMAINS, headers=boss.headers, json=body)


def record(detail: dict[str, Any], record_type: str, prefix: str) -> dict[str, Any]:
    found = [
        r
        for r in detail["dns_records"]
        if r["record_type"] == record_type and r["hostname"].startswith(prefix)
    ]
    assert len(found) == 1, (record_type, prefix, detail["dns_records"])
    return found[0]


async def test_create_generates_an_rsa_key_and_lists_the_records(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    boss, name = await admin(http), fresh()
    response = await create(http, boss, name=name.upper() + ".")
    assert response.status_code == 201, response.text
    detail = response.json()
    assert detail["name"] == name and detail["dkim_selector"] == "mail"
    assert detail["dkim_key_type"] == "rsa" and detail["is_active"] is True
    assert detail["last_dns_check"] is None and detail["all_verified"] is False
    flags = ("mx", "spf", "dkim", "dmarc", "mta_sts", "tls_rpt")
    assert not any(detail[f"{flag}_verified"] for flag in flags)

    host = server.settings.effective_hostname
    assert [(r["record_type"], r["hostname"], r["required"]) for r in detail["dns_records"]] == [
        ("MX", name, True),
        ("TXT", name, True),
        ("TXT", f"mail._domainkey.{name}", True),
        ("TXT", f"_dmarc.{name}", True),
        ("TXT", f"_mta-sts.{name}", False),
        ("CNAME", f"mta-sts.{name}", False),
        ("TXT", f"_smtp._tls.{name}", False),
    ]
    assert record(detail, "MX", name)["expected_value"] == f"10 {host}"
    assert all(
        r["verified"] is False and r["status_detail"] == "Not checked yet"
        for r in detail["dns_records"]
    )
    dkim = record(detail, "TXT", "mail._domainkey.")
    assert dkim["expected_value"] == detail["dkim_public_key_txt"]
    public = dkim["expected_value"].split("p=")[1]
    assert load_der_public_key(base64.b64decode(public)).key_size == 2048  # type: ignore[union-attr]

    got = await http.get(f"{DOMAINS}/{name}", headers=boss.headers)
    assert got.status_code == 200 and got.json() == detail
    listed = (await http.get(DOMAINS, headers=boss.headers)).json()
    summary = next(d for d in listed["domains"] if d["name"] == name)
    assert "dns_records" not in summary and summary["id"] == detail["id"]
    assert listed["total"] == len(listed["domains"])


async def test_ed25519_key_and_selector(http: httpx.AsyncClient) -> None:
    boss, name = await admin(http), fresh()
    response = await create(http, boss, name=name, dkim_selector="S2024", dkim_key_type="ed25519")
    assert response.status_code == 201, response.text
    detail = response.json()
    assert detail["dkim_key_type"] == "ed25519" and detail["dkim_selector"] == "s2024"
    dkim = record(detail, "TXT", "s2024._domainkey.")
    assert dkim["expected_value"].startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(dkim["expected_value"].split("p=")[1])) == 32


async def test_private_key_is_sealed_at_rest(server: MailcueServer) -> None:
    """The database holds the DKIM key only encrypted with the server secret."""
    await domains.create_domain(
        "sealed.test",
        selector="mail",
        key_type=DkimKeyType.ED25519,
        mta_sts_mode=MtaStsMode.TESTING,
        mta_sts_max_age=86400,
        box=domains.dkim_box(server.services.secret_key),  # type: ignore[union-attr]
    )
    row = await Domain.get(name="sealed.test")
    assert "PRIVATE KEY" not in row.dkim_private_key
    key = await domains.signing_key("sealed.test", server.services.secret_key)  # type: ignore[union-attr]
    assert key is not None and "BEGIN PRIVATE KEY" in key.private_key_pem
    with pytest.raises(ValueError, match="server secret"):
        await domains.signing_key("sealed.test", "another secret")
    assert await domains.signing_key("unmanaged.test", "x") is None


async def test_mta_sts_policy_is_served_for_the_host(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    boss, name = await admin(http), fresh()
    detail = (await create(http, boss, name=name, mta_sts_max_age=86400)).json()
    for url in (POLICY, f"{DOMAINS}{POLICY}"):
        response = await http.get(url, headers={"Host": f"MTA-STS.{name}:8443"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        assert text == (
            "version: STSv1\r\nmode: testing\r\n"
            f"mx: {server.settings.effective_hostname}\r\nmax_age: 86400\r\n"
        )
        assert detail["mta_sts_policy"] == text
    # The TXT record announces exactly this policy's id.
    txt = record(detail, "TXT", "_mta-sts.")["expected_value"]
    assert txt == f"v=STSv1; id={mta_sts_policy_id(text)}"

    for host in (name, f"mta-sts.unknown-{name}", "mta-sts.", "mta-sts.-bad", "[::1]:80", ""):
        missing = await http.get(POLICY, headers={"Host": host})
        assert missing.status_code == 404, host


async def test_a_host_that_names_no_managed_domain_gets_the_primary_domains_policy(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    boss, other = await admin(http), fresh()
    primary = server.settings.domain
    port = server.port("http")
    # Before the primary domain is managed, such hosts have no policy at all.
    assert (await http.get(POLICY, headers={"Host": f"127.0.0.1:{port}"})).status_code == 404
    made = await create(http, boss, name=primary, mta_sts_max_age=123456)
    assert made.status_code == 201, made.text
    try:
        own = made.json()["mta_sts_policy"]
        assert "max_age: 123456\r\n" in own
        theirs = (await create(http, boss, name=other, mta_sts_mode="enforce")).json()
        for host in (
            f"127.0.0.1:{port}",
            server.settings.effective_hostname,
            primary,
            other,  # the bare name is not the policy host of that domain
            f"mta-sts.unknown-{other}",
            "mta-sts.-bad",
            "[::1]:80",
            "",
        ):
            served = await http.get(POLICY, headers={"Host": host})
            assert (served.status_code, served.text) == (200, own), host
            assert served.headers["content-type"].startswith("text/plain")
        named = await http.get(POLICY, headers={"Host": f"mta-sts.{other}"})
        assert (named.status_code, named.text) == (200, theirs["mta_sts_policy"])
        assert "mode: enforce\r\n" in named.text
        # An inactive domain's own host answers for that domain: none, not the primary's.
        off = await http.patch(
            f"{DOMAINS}/{other}", headers=boss.headers, json={"is_active": False}
        )
        assert off.status_code == 200, off.text
        assert (await http.get(POLICY, headers={"Host": f"mta-sts.{other}"})).status_code == 404
        # GraphQL asks for one named domain: no fallback there.
        document = "query($d: String!) { mtaStsPolicy(domain: $d) }"
        answer = await graphql(http, None, document, d=primary.upper())
        assert answer["data"]["mtaStsPolicy"] == own
        missing = await graphql(http, None, document, d=f"unknown-{other}")
        assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    finally:
        gone = await http.delete(f"{DOMAINS}/{primary}", headers=boss.headers)
        assert gone.status_code == 204, gone.text
    assert (await http.get(POLICY, headers={"Host": f"127.0.0.1:{port}"})).status_code == 404


async def test_changing_the_policy_changes_its_id(http: httpx.AsyncClient) -> None:
    boss, name = await admin(http), fresh()
    before = (await create(http, boss, name=name)).json()
    changed = await http.patch(
        f"{DOMAINS}/{name}", headers=boss.headers, json={"mta_sts_mode": "enforce"}
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["mta_sts_mode"] == "enforce" and "mode: enforce\r\n" in after["mta_sts_policy"]
    old_id = record(before, "TXT", "_mta-sts.")["expected_value"]
    new_id = record(after, "TXT", "_mta-sts.")["expected_value"]
    assert old_id != new_id
    served = await http.get(POLICY, headers={"Host": f"mta-sts.{name}"})
    assert new_id.endswith(mta_sts_policy_id(served.text))

    off = await http.patch(f"{DOMAINS}/{name}", headers=boss.headers, json={"is_active": False})
    assert off.json()["is_active"] is False
    assert (await http.get(POLICY, headers={"Host": f"mta-sts.{name}"})).status_code == 404
    bad_age = await http.patch(
        f"{DOMAINS}/{name}", headers=boss.headers, json={"mta_sts_max_age": 10**9}
    )
    assert bad_age.status_code == 400


async def test_delete(http: httpx.AsyncClient) -> None:
    boss, name = await admin(http), fresh()
    assert (await create(http, boss, name=name)).status_code == 201
    assert (await create(http, boss, name=name)).status_code == 409
    assert (await http.delete(f"{DOMAINS}/{name}", headers=boss.headers)).status_code == 204
    assert (await http.get(f"{DOMAINS}/{name}", headers=boss.headers)).status_code == 404
    assert (await http.delete(f"{DOMAINS}/{name}", headers=boss.headers)).status_code == 404
    assert (await http.get(POLICY, headers={"Host": f"mta-sts.{name}"})).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "exa mple.test"}, 400),
        ({"name": "-bad.test"}, 400),
        ({"name": "a..b"}, 400),
        ({"name": "../../etc/passwd"}, 400),
        ({"name": "localhost"}, 400),
        ({"name": "10.0.0.1"}, 400),
        ({"name": "x" * 300}, 400),
        ({"name": "ok.test", "dkim_selector": "bad selector"}, 400),
        ({"name": "ok.test", "mta_sts_max_age": 0}, 400),
        ({"name": 42}, 422),
        ({"name": ["a.test"]}, 422),
        ({"name": "ok.test", "dkim_key_type": "dsa"}, 422),
        ({"name": "ok.test", "mta_sts_mode": "strict"}, 422),
        ({"name": "ok.test", "mta_sts_max_age": "week"}, 422),
        ({}, 422),
    ],
)
async def test_bad_input_is_4xx(
    http: httpx.AsyncClient, body: dict[str, Any], status: int
) -> None:
    boss = await admin(http)
    response = await create(http, boss, **body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


async def test_bad_names_in_the_path_are_4xx(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    for path, status in (
        ("bad_name.test", 400),
        ("..", 404),  # normalised away by the HTTP client: /api/v1 has no such route
        ("%2E%2E%2Fetc", 404),  # an encoded slash matches no route
        ("x" * 254, 422),
        ("unknown.test", 404),
    ):
        response = await http.get(f"{DOMAINS}/{path}", headers=boss.headers)
        assert response.status_code == status, (path, response.text)
        verify = await http.post(f"{DOMAINS}/{path}/verify-dns", headers=boss.headers)
        assert 400 <= verify.status_code < 500, path


async def test_only_admins_with_the_scope(http: httpx.AsyncClient) -> None:
    boss, name = await admin(http), fresh()
    assert (await create(http, boss, name=name)).status_code == 201
    user = await new_user(http)
    reader = (await new_api_key(http, boss, scopes=["domain:read"]))["key"]
    other = (await new_api_key(http, boss, scopes=["alias:read", "alias:write"]))["key"]
    user_key = (await new_api_key(http, user))["key"]
    calls = [
        ("GET", DOMAINS, None, True),
        ("POST", DOMAINS, {"name": fresh()}, False),
        ("GET", f"{DOMAINS}/{name}", None, True),
        ("PATCH", f"{DOMAINS}/{name}", {"is_active": True}, False),
        ("POST", f"{DOMAINS}/{name}/verify-dns", None, False),
        ("DELETE", f"{DOMAINS}/{name}", None, False),
    ]
    for method, url, body, read_only in calls:
        anonymous = await http.request(method, url, json=body)
        assert anonymous.status_code == 401, (method, url)
        regular = await http.request(method, url, json=body, headers=user.headers)
        assert regular.status_code == 403, (method, url)
        as_user_key = await http.request(method, url, json=body, headers={"X-API-Key": user_key})
        assert as_user_key.status_code == 403, (method, url)
        wrong_scope = await http.request(method, url, json=body, headers={"X-API-Key": other})
        assert wrong_scope.status_code == 403 and "domain:" in wrong_scope.json()["detail"]
        if read_only:
            allowed = await http.request(method, url, headers={"X-API-Key": reader})
            assert allowed.status_code == 200, (method, url)
        else:
            denied = await http.request(method, url, json=body, headers={"X-API-Key": reader})
            assert denied.status_code == 403, (method, url)


GQL_CREATE = """
mutation ($name: String!) {
  createDomain(input: {name: $name, dkimKeyType: ED25519, mtaStsMode: ENFORCE}) {
    __typename
    ... on DomainDetail {
      name dkimKeyType mtaStsMode allVerified dkimPublicKeyTxt
      dnsRecords { recordType hostname expectedValue required verified statusDetail }
    }
    ... on OperationError { code message }
  }
}"""


async def test_graphql_twin(http: httpx.AsyncClient) -> None:
    boss, name = await admin(http), fresh()
    made = (await graphql(http, boss, GQL_CREATE, name=name))["data"]["createDomain"]
    assert made["__typename"] == "DomainDetail"
    assert (made["dkimKeyType"], made["mtaStsMode"]) == ("ED25519", "ENFORCE")
    assert len(made["dnsRecords"]) == 7 and made["dkimPublicKeyTxt"].startswith("v=DKIM1")
    again = (await graphql(http, boss, GQL_CREATE, name=name))["data"]["createDomain"]
    assert again["code"] == "CONFLICT"
    bad = (await graphql(http, boss, GQL_CREATE, name="not a domain"))["data"]
    assert bad["createDomain"]["code"] == "INVALID"

    listed = await graphql(http, boss, "{ domains { total domains { name } } }")
    assert {"name": name} in listed["data"]["domains"]["domains"]
    one = await graphql(http, boss, "query ($n: String!) { domain(name: $n) { name } }", n=name)
    assert one["data"]["domain"] == {"name": name}
    policy = await graphql(
        http, None, "query ($d: String!) { mtaStsPolicy(domain: $d) }", d=name.upper()
    )
    assert "mode: enforce\r\n" in policy["data"]["mtaStsPolicy"]
    patch = """mutation ($n: String!) { updateDomain(name: $n, input: {mtaStsMaxAge: 3600}) {
      __typename ... on DomainDetail { mtaStsMaxAge } } }"""
    patched = await graphql(http, boss, patch, n=name)
    assert patched["data"]["updateDomain"] == {"__typename": "DomainDetail", "mtaStsMaxAge": 3600}
    delete = """mutation ($n: String!) { deleteDomain(name: $n) {
      __typename ... on Done { message } } }"""
    deleted = await graphql(http, boss, delete, n=name)
    assert deleted["data"]["deleteDomain"] == {"__typename": "Done", "message": "Domain deleted"}

    user = await new_user(http)
    denied = (await graphql(http, user, GQL_CREATE, name=fresh()))["data"]["createDomain"]
    assert denied["code"] == "FORBIDDEN"
    hidden = await graphql(http, None, "{ domains { total } }")
    assert hidden["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_official_sdk(http: httpx.AsyncClient) -> None:
    boss, name = await admin(http), fresh()
    key = (await new_api_key(http, boss, scopes=["domain:read", "domain:write"]))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        created = await client.domains.create(name)
        assert created.name == name and created.dkim_selector == "mail"
        detail = await client.domains.get(name)
        assert detail.dkim_public_key_txt and len(detail.dns_records) == 7
        assert name in [d.name for d in (await client.domains.list()).domains]
        await client.domains.delete(name)
        assert name not in [d.name for d in (await client.domains.list()).domains]
