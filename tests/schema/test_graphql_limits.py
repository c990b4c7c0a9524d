"""GraphQL documents too big or too costly to run are refused with 400 before they run.

One anonymous query of 20,000 aliases stalled the whole process for seconds;
here each hostile shape is answered 400 at once, with one error whose code
is QUERY_REJECTED, while the server goes on answering. Introspection and
"Did you mean" hints are for signed-in callers only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from accounts import Account, admin
from live_events import graphql_subscription
from mailcue_server.app import MailcueServer

QUICK = 1.0


async def post(http: httpx.AsyncClient, query: str, account: Account | None = None) -> Any:
    headers = account.headers if account is not None else {}
    return await http.post("/graphql", json={"query": query}, headers=headers, timeout=30)


def aliases(count: int) -> str:
    return "{" + " ".join(f"a{i}: __typename" for i in range(count)) + "}"


def nested(depth: int) -> str:
    return "{ " + "health { " * (depth - 1) + "status" + " }" * (depth - 1) + " }"


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the next one twice: 2**levels fields from a few hundred bytes."""
    spreads = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {spreads} fragment F{levels} on Query {{ __typename }}"


def many_tokens(count: int) -> str:
    return "{ health(x: [" + " ".join("1" for _ in range(count)) + "]) { status } }"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            aliases(20_000),
            f"The query is {len(aliases(20_000)):,} characters; the limit is 65,536",
        ),
        (aliases(51), "The query has more than 50 aliases"),
        (many_tokens(6_000), "The query has more than 5,000 tokens"),
        (nested(16), "The query nests 16 levels deep; the limit is 15"),
        (fragment_bomb(30), "The query selects more than 2,000 fields"),
    ],
    ids=["size", "aliases", "tokens", "depth", "fragment-bomb"],
)
async def test_costly_documents_get_400_at_once(
    http: httpx.AsyncClient, query: str, message: str
) -> None:
    for account in (None, await admin(http)):
        started = time.monotonic()
        response = await post(http, query, account)

        assert time.monotonic() - started < QUICK
        assert response.status_code == 400, response.text
        assert response.json() == {
            "data": None,
            "errors": [{"message": message, "extensions": {"code": "QUERY_REJECTED"}}],
        }
    assert (await http.get("/api/v1/health")).status_code == 200


async def test_documents_at_the_limits_still_run(http: httpx.AsyncClient) -> None:
    answer = await post(http, aliases(50))
    assert answer.status_code == 200
    assert answer.json()["data"]["a49"] == "Query"

    answer = await post(http, fragment_bomb(10))  # 1,024 fields
    assert answer.status_code == 200
    assert answer.json()["data"] == {"__typename": "Query"}


async def test_introspection_needs_credentials(http: httpx.AsyncClient) -> None:
    anonymous = await post(http, get_introspection_query())
    assert anonymous.status_code == 400
    assert anonymous.json()["errors"][0]["message"] == (
        "Introspection needs credentials (Authorization or X-API-Key)"
    )
    assert (await post(http, "{ __typename }")).json() == {"data": {"__typename": "Query"}}

    signed_in = await post(http, get_introspection_query(), await admin(http))
    assert signed_in.status_code == 200
    assert "errors" not in signed_in.json(), signed_in.json()["errors"]
    assert signed_in.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_suggestions_only_for_signed_in_callers(http: httpx.AsyncClient) -> None:
    typo = "{ helth { status } }"

    anonymous = (await post(http, typo)).json()["errors"][0]["message"]
    signed_in = (await post(http, typo, await admin(http))).json()["errors"][0]["message"]

    assert anonymous == "Cannot query field 'helth' on type 'Query'."
    assert signed_in == "Cannot query field 'helth' on type 'Query'. Did you mean 'health'?"


async def test_subscriptions_over_websocket_meet_the_same_limits(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    account = await admin(http)
    hostile = "subscription {" + " ".join(f"e{i}: events {{ type }}" for i in range(51)) + "}"

    async with graphql_subscription(server, account.headers, hostile) as subscription:
        async with asyncio.timeout(5):
            await subscription.feed.ended

    assert [error["message"] for error in subscription.errors] == [
        "The query has more than 50 aliases"
    ]
