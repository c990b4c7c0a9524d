"""Page numbers of any size on every paginated route: an empty page or a 4xx, never a 500."""

from __future__ import annotations

import httpx
import pytest

from accounts import admin, new_mailbox
from mailcue_server.app import MailcueServer

HUGE = 10**30  # no 64-bit offset holds (page - 1) * page_size


async def paginated_routes(http: httpx.AsyncClient) -> list[tuple[str, dict[str, str]]]:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    injected = await http.post(
        "/api/v1/emails/inject",
        headers=boss.headers,
        json={
            "mailbox": address,
            "from_address": "a@example.test",
            "to_addresses": [address],
            "subject": "one",
        },
    )
    assert injected.status_code == 201, injected.text
    return [
        ("/api/v1/system/queue", {}),
        ("/api/v1/emails", {"mailbox": address}),
        (f"/api/v1/mailboxes/{address}/emails", {}),
        (f"/api/v1/mailboxes/{address}/emails", {"search": "one"}),
    ]


@pytest.mark.parametrize("page", [HUGE, 2**63, 2**63 // 50 + 1, 2**62])
async def test_a_page_past_any_end_is_empty(
    server: MailcueServer, http: httpx.AsyncClient, page: int
) -> None:
    boss = await admin(http)
    for path, params in await paginated_routes(http):
        response = await http.get(path, headers=boss.headers, params={**params, "page": page})

        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert body["page"] == page
        assert body["has_more"] is False
        assert body.get("emails", body.get("entries")) == []


@pytest.mark.parametrize(
    "params",
    [{"page": -HUGE}, {"page": 0}, {"page_size": HUGE}, {"page_size": -HUGE}, {"page_size": 0}],
)
async def test_out_of_range_numbers_are_a_clear_400(
    server: MailcueServer, http: httpx.AsyncClient, params: dict[str, int]
) -> None:
    boss = await admin(http)
    for path, extra in await paginated_routes(http):
        response = await http.get(path, headers=boss.headers, params={**extra, **params})

        assert response.status_code == 400, (path, response.text)
        assert "page" in response.json()["detail"]


async def test_send_canary_listing_bounds_its_limit(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    for limit in (HUGE, -HUGE, 0, 101):
        response = await http.get(
            "/api/v1/emails/send-canaries", headers=boss.headers, params={"limit": limit}
        )
        assert response.status_code == 422, response.text
