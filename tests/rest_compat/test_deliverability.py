"""Batch validation, delivery feedback, calibration, bounce ingest and suppressed domains.

Over REST and GraphQL against a node whose validation probes a test MX
(``ok.test`` knows a few mailboxes, ``any.test`` and ``corp.test`` accept
every address) found through dnsmasq.
"""

from __future__ import annotations

import asyncio
import secrets
import smtplib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import Account, admin, graphql, new_api_key, new_mailbox, new_user
from conftest import node_settings
from dns_server import dns_server
from fake_mx import FakeMx, fake_mx
from mailcue_server.app import MailcueServer
from waiting import eventually

BATCH = "/api/v1/emails/validate-batch"
FEEDBACK = "/api/v1/emails/validation-feedback"
CALIBRATION = "/api/v1/emails/validation-calibration"
INGEST = "/api/v1/emails/bounces/ingest"
SUPPRESSED = "/api/v1/emails/suppressed-domains"


@pytest_asyncio.fixture(scope="module")
async def mx() -> AsyncIterator[FakeMx]:
    async with fake_mx({"alice@ok.test", "bob@ok.test"}, {"any.test", "corp.test"}) as server:
        yield server


@pytest_asyncio.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, mx: FakeMx
) -> AsyncIterator[MailcueServer]:
    async with dns_server(
        mx=[(d, "mx.ok.test", 10) for d in ("ok.test", "any.test", "corp.test")],
        hosts={"mx.ok.test": ["127.0.0.1"]},
    ) as resolver:
        node = MailcueServer(
            node_settings(
                tmp_path_factory.mktemp("deliverability"),
                dns_resolver=resolver,
                validation_smtp_port=mx.port,
                validation_timeout=2.0,
                validation_batch_concurrency=3,
            )
        )
        await node.start()
        yield node
        await node.stop()


@pytest_asyncio.fixture(scope="module")
async def someone(server: MailcueServer) -> Account:
    """One user for the tests that only need to be logged in (bad input, parameters)."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await new_user(client)


def dsn(outcomes: dict[str, str]) -> str:
    """A delivery status notification: address -> RFC 3463 status."""
    action = {"5": "failed", "4": "delayed", "2": "delivered"}
    blocks = "".join(
        f"\r\nFinal-Recipient: rfc822; {address}\r\nAction: {action[status[0]]}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; {status[0]}50 {status} see above\r\n"
        for address, status in outcomes.items()
    )
    return (
        "From: MAILER-DAEMON@mx.far.test\r\nSubject: Delivery Status Notification\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n'
        "--x\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--x\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.far.test\r\n{blocks}\r\n--x--\r\n"
    )


async def post(http: httpx.AsyncClient, who: Account, path: str, body: Any) -> dict[str, Any]:
    response = await http.post(path, json=body, headers=who.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def get(http: httpx.AsyncClient, who: Account, path: str, **params: Any) -> dict[str, Any]:
    response = await http.get(path, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- validate-batch -------------------------------------------------------------------------


async def test_batch_checks_each_address_and_reads_the_batch(
    http: httpx.AsyncClient, mx: FakeMx
) -> None:
    user = await new_user(http)
    emails = [
        "ann.lee@corp.test",
        "bo.chan@corp.test",
        "cy.dunn@corp.test",
        "john.smith@corp.test",
        "jsmith@corp.test",
        "alice@ok.test",
        "nobody@ok.test",
        "alice@ok.test",  # twice: answered twice, probed once
        "bad address",
    ]
    probed = len(mx.handler.recipients)
    body = await post(http, user, BATCH, {"emails": emails, "target_bounce_rate": 0.05})
    results = body["results"]
    assert [r["email"] for r in results] == emails
    assert [r["status"] for r in results] == ["catch_all"] * 5 + [
        "valid",
        "invalid",
        "valid",
        "invalid",
    ]
    # corp.test's convention is first.last; jsmith breaks it and spells john.smith again.
    assert [r["matches_domain_pattern"] for r in results[:5]] == [True, True, True, True, False]
    assert [r["permutation_variant"] for r in results[:5]] == [False, False, False, True, True]
    risk = {r["email"]: r["risk_score"] for r in results}
    assert risk["alice@ok.test"] < risk["ann.lee@corp.test"] < risk["jsmith@corp.test"]
    assert risk["nobody@ok.test"] > 0.9 and results[6]["recommended_action"] == "hold"
    catch_all = results[0]["catch_all_risk"]
    assert catch_all["source"] == "no_history" and catch_all["base_rate"] == 0.125
    assert results[5]["catch_all_risk"] is None and results[8]["error"]
    assert body["summary"] == {
        "total": 9,
        "valid": 2,
        "invalid": 2,
        "catch_all": 5,
        "undetermined": 0,
        "disposable": 0,
        "mean_risk_score": pytest.approx(sum(risk[e] for e in emails) / 9, abs=1e-3),
        "projected_bounce_rate": body["summary"]["mean_risk_score"],
    }
    selection = body["selection"]
    included, excluded = selection["included"], selection["excluded"]
    assert included.count("alice@ok.test") == 2 and "ann.lee@corp.test" in included
    assert {"nobody@ok.test", "bad address", "jsmith@corp.test"} <= set(excluded)
    assert selection["included_count"] + selection["excluded_count"] == 9
    assert selection["projected_bounce_rate"] <= 0.05
    # The largest set: adding the safest address left out would break the budget.
    chosen = [risk[e] for e in included]
    cheapest = min(risk[e] for e in excluded)
    assert (sum(chosen) + cheapest) / (len(chosen) + 1) > 0.05
    # One probe per distinct deliverable address (plus a made-up control per accepting server).
    targets = [a for a in mx.handler.recipients[probed:] if a in emails]
    assert sorted(targets) == sorted(set(emails) - {"bad address"})
    assert mx.handler.data_commands == 0


async def test_batch_checks_a_bounded_number_at_a_time(
    http: httpx.AsyncClient, mx: FakeMx, someone: Account
) -> None:
    """validation_batch_concurrency is 3 here: never more probes at once, and not one by one."""
    mx.handler.most_in_flight = 0
    emails = [f"slow{n}@ok.test" for n in range(8)]
    started = asyncio.get_running_loop().time()
    body = await post(http, someone, BATCH, {"emails": emails})
    elapsed = asyncio.get_running_loop().time() - started
    assert [r["status"] for r in body["results"]] == ["invalid"] * 8
    assert mx.handler.most_in_flight == 3
    assert elapsed >= 3 * mx.handler.slow_seconds  # 8 probes, 3 at a time: 3 rounds at least


async def test_batch_without_domain_signals_or_budget(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    emails = ["ann.lee@corp.test", "bo.chan@corp.test", "cy.dunn@corp.test", "zz@corp.test"]
    body = await post(http, user, BATCH, {"emails": emails, "include_domain_signals": False})
    assert {r["matches_domain_pattern"] for r in body["results"]} == {None}
    assert {r["permutation_variant"] for r in body["results"]} == {False}
    assert body["selection"] is None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"emails": []},
        {"emails": "alice@ok.test"},
        {"emails": [5]},
        {"emails": ["alice@ok.test"], "target_bounce_rate": 1.5},
        {"emails": ["alice@ok.test"], "target_bounce_rate": "low"},
        {"emails": ["alice@ok.test"], "include_domain_signals": [1]},
        {"emails": ["a@ok.test"] * 1001},
        {"emails": ["a" * 400 + "@ok.test"]},
    ],
)
async def test_batch_bad_bodies_are_422(
    http: httpx.AsyncClient, someone: Account, payload: dict[str, Any]
) -> None:
    response = await http.post(BATCH, json=payload, headers=someone.headers)
    assert response.status_code == 422, response.text


async def test_scopes(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    assert (await http.post(BATCH, json={"emails": ["alice@ok.test"]})).status_code == 401
    reader = {"X-API-Key": (await new_api_key(http, user, scopes=["email:read"]))["key"]}
    sender = {"X-API-Key": (await new_api_key(http, user, scopes=["email:send"]))["key"]}
    writer = {"X-API-Key": (await new_api_key(http, user, scopes=["email:write"]))["key"]}
    feedback = {"email": "alice@ok.test", "outcome": "delivered"}
    checks = [
        ("post", BATCH, {"emails": ["alice@ok.test"]}, reader, 200),
        ("post", BATCH, {"emails": ["alice@ok.test"]}, sender, 403),
        ("get", CALIBRATION, None, reader, 200),
        ("get", SUPPRESSED, None, reader, 200),
        ("get", SUPPRESSED, None, sender, 403),
        ("post", FEEDBACK, feedback, reader, 403),
        ("post", FEEDBACK, feedback, writer, 200),
        ("post", INGEST, {"raw_message": dsn({"x@y.test": "5.1.1"})}, reader, 403),
        ("post", INGEST, {"raw_message": dsn({"x@y.test": "5.1.1"})}, writer, 200),
    ]
    for method, path, body, headers, status in checks:
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (path, headers, response.text)
    denied = await http.post(FEEDBACK, json=feedback, headers=reader)
    assert "email:write" in denied.json()["detail"]


# --- feedback and calibration ---------------------------------------------------------------


async def test_feedback_feeds_calibration_and_later_scores(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    empty = await get(http, user, CALIBRATION)
    assert empty == {
        "sample_size": 0,
        "brier_score": None,
        "mean_predicted": None,
        "observed_rate": None,
        "bins": [],
    }
    domain = "corp.test"
    scored = await post(http, user, BATCH, {"emails": [f"u{n}@{domain}" for n in range(6)]})
    first = scored["results"][0]["risk_score"]
    for n in range(3):
        recorded = await post(
            http,
            user,
            FEEDBACK,
            {"email": f"u{n}@{domain}", "outcome": "hard_bounce", "smtp_code": 550},
        )
        assert recorded == {"recorded": True, "outcome": "hard_bounce"}
    await post(http, user, FEEDBACK, {"email": f"u3@{domain}", "outcome": "delivered"})
    await post(http, user, FEEDBACK, {"email": f"u4@{domain}", "outcome": "soft_bounce"})
    await post(http, user, FEEDBACK, {"email": "never-scored@corp.test", "outcome": "delivered"})
    figures = await get(http, user, CALIBRATION, days=1)
    assert figures["sample_size"] == 4  # scored outcomes only; the soft bounce says neither
    assert figures["observed_rate"] == 0.75
    assert figures["mean_predicted"] == pytest.approx(first, abs=1e-3)
    assert figures["brier_score"] == pytest.approx((3 * (first - 1) ** 2 + first**2) / 4, abs=1e-3)
    [bin_] = figures["bins"]
    assert (bin_["count"], bin_["observed_rate"]) == (4, 0.75)
    assert bin_["lower"] <= first < bin_["upper"]
    # The measured domain now drives its addresses' risk, and a bounced address its own.
    again = await post(http, user, BATCH, {"emails": [f"new@{domain}", f"u0@{domain}"]})
    fresh, bounced = again["results"]
    assert fresh["catch_all_risk"]["source"] == "domain_history"
    assert fresh["catch_all_risk"]["sample_size"] == 6
    assert fresh["risk_score"] > first
    assert bounced["catch_all_risk"]["source"] == "exact_history"
    assert bounced["risk_score"] >= 0.95
    # Another user's history is theirs alone.
    stranger = await new_user(http)
    assert (await get(http, stranger, CALIBRATION))["sample_size"] == 0
    theirs = await post(http, stranger, BATCH, {"emails": [f"new@{domain}"]})
    assert theirs["results"][0]["catch_all_risk"]["source"] == "no_history"


async def test_global_calibration_is_for_admins(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    refused = await http.get(CALIBRATION, params={"scope": "global"}, headers=user.headers)
    assert refused.status_code == 403
    boss = await admin(http)
    figures = await get(http, boss, CALIBRATION, scope="global", days=365)
    assert figures["sample_size"] >= 4  # the other tests' outcomes, pooled


@pytest.mark.parametrize(
    ("params", "status"),
    [({"days": 0}, 422), ({"days": 366}, 422), ({"days": "x"}, 422), ({"scope": "all"}, 422)],
)
async def test_calibration_bad_parameters(
    http: httpx.AsyncClient, someone: Account, params: dict[str, Any], status: int
) -> None:
    response = await http.get(CALIBRATION, params=params, headers=someone.headers)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"email": "a@ok.test"}, 422),
        ({"email": "a@ok.test", "outcome": "bounced"}, 422),
        ({"email": "a@ok.test", "outcome": "delivered", "smtp_code": 700}, 422),
        ({"email": "a@ok.test", "outcome": "delivered", "smtp_code": "x"}, 422),
        ({"email": "a@ok.test", "outcome": "delivered", "enhanced_status": "5" * 17}, 422),
        ({"email": ["a@ok.test"], "outcome": "delivered"}, 422),
        ({"email": "", "outcome": "delivered"}, 422),
        ({"email": "not an address", "outcome": "delivered"}, 400),
        ({"email": "a@ok.test", "outcome": "delivered", "enhanced_status": "soon"}, 400),
    ],
)
async def test_feedback_bad_bodies(
    http: httpx.AsyncClient, someone: Account, payload: dict[str, Any], status: int
) -> None:
    response = await http.post(FEEDBACK, json=payload, headers=someone.headers)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


# --- bounces and suppression ----------------------------------------------------------------


async def test_bounces_pause_a_domain_for_their_user_only(http: httpx.AsyncClient) -> None:
    user, other = await new_user(http), await new_user(http)
    domain = "any.test"  # a catch-all domain: its addresses are scored from history
    few = await post(http, user, INGEST, {"raw_message": dsn({f"a@{domain}": "5.1.1"})})
    assert few["is_dsn"] is True and few["recorded"] == 1
    assert (await get(http, user, SUPPRESSED))["total"] == 0  # 1 outcome: too few to judge
    outcomes = {f"b{n}@{domain}": "5.1.1" for n in range(2)} | {
        f"c@{domain}": "4.2.2",
        f"d@{domain}": "2.0.0",
        "e@elsewhere.test": "5.1.1",
    }
    body = await post(http, user, INGEST, {"raw_message": dsn(outcomes)})
    assert body["recorded"] == 5
    assert {(r["recipient"], r["outcome"]) for r in body["recipients"]} == {
        (f"b0@{domain}", "hard_bounce"),
        (f"b1@{domain}", "hard_bounce"),
        (f"c@{domain}", "soft_bounce"),
        (f"d@{domain}", "delivered"),
        ("e@elsewhere.test", "hard_bounce"),
    }
    listed = await get(http, user, SUPPRESSED)
    assert listed["total"] == 1
    [entry] = listed["suppressions"]
    assert (entry["domain"], entry["hard_bounces"], entry["observations"]) == (domain, 3, 5)
    assert "3 of 5" in entry["reason"] and entry["expires_at"] > entry["created_at"]
    assert (await get(http, other, SUPPRESSED)) == {"suppressions": [], "total": 0}
    # Risk scores see the pause and the measured rate; the other user's do not.
    [mine] = (await post(http, user, BATCH, {"emails": [f"z@{domain}"]}))["results"]
    [theirs] = (await post(http, other, BATCH, {"emails": [f"z@{domain}"]}))["results"]
    labels = [c["label"] for c in mine["catch_all_risk"]["contributions"]]
    assert "domain_suppressed" in labels and mine["recommended_action"] == "hold"
    assert mine["catch_all_risk"]["source"] == "domain_history"
    assert theirs["catch_all_risk"]["contributions"] == []
    assert mine["risk_score"] > theirs["risk_score"]


async def test_messages_that_are_not_bounces(http: httpx.AsyncClient, someone: Account) -> None:
    body = await post(
        http, someone, INGEST, {"raw_message": "Subject: out of office\r\n\r\nback soon\r\n"}
    )
    assert body == {"is_dsn": False, "recorded": 0, "recipients": []}


@pytest.mark.parametrize(
    "payload",
    [{}, {"raw_message": ""}, {"raw_message": 5}, {"raw_message": "x" * 2_000_001}],
)
async def test_ingest_bad_bodies_are_422(
    http: httpx.AsyncClient, someone: Account, payload: dict[str, Any]
) -> None:
    response = await http.post(INGEST, json=payload, headers=someone.headers)
    assert response.status_code == 422


# --- GraphQL --------------------------------------------------------------------------------


async def test_graphql_twins(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    batch = await graphql(
        http,
        user,
        """query ($input: EmailBatchValidationInput!) {
          validateEmailBatch(input: $input) {
            results { email status riskScore recommendedAction catchAllRisk { source } }
            summary { total catchAll }
            selection { included excluded }
          }
        }""",
        input={"emails": ["alice@ok.test", "x@any.test"], "targetBounceRate": 0.05},
    )
    result = batch["data"]["validateEmailBatch"]
    assert [(r["email"], r["status"]) for r in result["results"]] == [
        ("alice@ok.test", "VALID"),
        ("x@any.test", "CATCH_ALL"),
    ]
    assert result["results"][1]["catchAllRisk"] == {"source": "NO_HISTORY"}
    assert result["summary"] == {"total": 2, "catchAll": 1}
    assert result["selection"] == {"included": ["alice@ok.test"], "excluded": ["x@any.test"]}

    feedback = """mutation ($input: ValidationFeedbackInput!) {
      recordValidationFeedback(input: $input) {
        __typename ... on ValidationFeedback { recorded outcome }
        ... on OperationError { code message }
      }
    }"""
    done = await graphql(
        http, user, feedback, input={"email": "x@any.test", "outcome": "HARD_BOUNCE"}
    )
    assert done["data"]["recordValidationFeedback"] == {
        "__typename": "ValidationFeedback",
        "recorded": True,
        "outcome": "HARD_BOUNCE",
    }
    refused = await graphql(
        http, user, feedback, input={"email": "x@any.test", "outcome": "DELIVERED", "smtpCode": 9}
    )
    assert refused["data"]["recordValidationFeedback"]["code"] == "INVALID"

    figures = await graphql(
        http, user, "{ validationCalibration(days: 7) { sampleSize observedRate bins { count } } }"
    )
    assert figures["data"]["validationCalibration"] == {
        "sampleSize": 1,
        "observedRate": 1.0,
        "bins": [{"count": 1}],
    }
    wrong = await graphql(http, user, '{ validationCalibration(scope: "all") { sampleSize } }')
    assert wrong["errors"][0]["extensions"]["code"] == "INVALID"

    domain = f"gql{secrets.token_hex(3)}.test"
    ingest = await graphql(
        http,
        user,
        """mutation ($input: BounceIngestInput!) {
          ingestBounce(input: $input) {
            ... on BounceIngest { isDsn recorded recipients { recipient outcome smtpCode } }
            ... on OperationError { code }
          }
        }""",
        input={"rawMessage": dsn({f"u{n}@{domain}": "5.1.1" for n in range(5)})},
    )
    assert ingest["data"]["ingestBounce"]["recorded"] == 5
    assert ingest["data"]["ingestBounce"]["recipients"][0]["outcome"] == "HARD_BOUNCE"
    suppressed = await graphql(
        http, user, "{ suppressedDomains { total suppressions { domain hardBounces } } }"
    )
    assert suppressed["data"]["suppressedDomains"] == {
        "total": 1,
        "suppressions": [{"domain": domain, "hardBounces": 5}],
    }
    anonymous = await graphql(http, None, "{ suppressedDomains { total } }")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bounces_received_by_smtp_are_recorded_for_the_mailbox_owner(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """A bounce that arrives by mail is ingested as if its mailbox's owner had posted it."""
    owner, other = await new_user(http), await new_user(http)
    mailbox = await new_mailbox(http, owner)
    ownerless = f"auto-{secrets.token_hex(3)}@mailcue.local"  # made by its first mail
    domain = "corp.test"
    bounced = {f"r{n}@{domain}": "5.1.1" for n in range(4)} | {f"ok@{domain}": "2.0.0"}

    def send(to: str, raw: str) -> None:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
            smtp.sendmail("", [to], raw.encode())

    await asyncio.to_thread(send, ownerless, dsn(bounced))
    await asyncio.to_thread(send, mailbox, "Subject: not a bounce\r\n\r\nhello\r\n")
    await asyncio.to_thread(send, mailbox, dsn(bounced))

    async def suppressed() -> bool:
        listed = await get(http, owner, SUPPRESSED)
        return [entry["domain"] for entry in listed["suppressions"]] == [domain]

    await eventually(suppressed)
    [entry] = (await get(http, owner, SUPPRESSED))["suppressions"]
    assert (entry["hard_bounces"], entry["observations"]) == (4, 5)
    assert (await get(http, other, SUPPRESSED))["total"] == 0
