"""Delivery history and staged sends in the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mailcue_server.errors import NotFound
from mailcue_server.mail.bounce_risk import DomainHistory
from mailcue_server.store import deliverability, send_canaries, users
from mailcue_server.store.db import Database
from mailcue_server.store.deliverability import NewOutcome
from mailcue_server.store.deliverability_models import Outcome, SendCanaryRecipient
from mailcue_server.store.models import User
from mailcue_server.store.send_canaries import NewRecipient

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def user(name: str) -> User:
    return await users.create(username=name, email=f"{name}@example.test", password_hash="x")


def outcome(address: str, kind: Outcome) -> NewOutcome:
    return NewOutcome(address=address, outcome=kind, source="feedback")


async def test_outcomes_measure_domains_per_user(db: Database) -> None:
    ann, bob = await user("ann"), await user("bob")
    await deliverability.add_outcomes(
        ann.id,
        [
            outcome("A@Far.test", Outcome.HARD_BOUNCE),
            outcome("b@far.test", Outcome.DELIVERED),
            outcome("c@far.test", Outcome.SOFT_BOUNCE),
            outcome("d@near.test", Outcome.DELIVERED),
        ],
        NOW - timedelta(days=40),  # outside the window below
    )
    await deliverability.add_outcomes(
        ann.id,
        [outcome("a@far.test", Outcome.DELIVERED), outcome("e@far.test", Outcome.HARD_BOUNCE)],
        NOW,
    )
    await deliverability.add_outcomes(bob.id, [outcome("x@far.test", Outcome.HARD_BOUNCE)], NOW)
    since = NOW - timedelta(days=30)
    assert await deliverability.domain_histories(ann.id, ["far.test", "near.test"], since) == {
        "far.test": DomainHistory(hard_bounces=1, observations=2)
    }
    everything = await deliverability.domain_histories(ann.id, ["FAR.test"], NOW - timedelta(99))
    assert everything == {"far.test": DomainHistory(hard_bounces=2, observations=5)}
    # The latest outcome of each address wins; addresses are case-insensitive.
    last = await deliverability.last_outcomes(ann.id, ["a@far.test", "C@FAR.TEST", "z@far.test"])
    assert last == {"a@far.test": "delivered", "c@far.test": "soft_bounce"}
    assert await deliverability.last_outcomes(bob.id, ["a@far.test"]) == {}


async def test_scores_are_kept_per_user_and_address_and_feed_calibration(db: Database) -> None:
    ann, bob = await user("ann"), await user("bob")
    await deliverability.save_scores(ann.id, {"a@far.test": 0.1, "b@far.test": 0.8}, NOW)
    await deliverability.save_scores(ann.id, {"A@far.test": 0.3}, NOW)  # replaces, no duplicate
    # Concurrent saves of one new address end with one row and no error.
    await asyncio.gather(
        *(deliverability.save_scores(bob.id, {"c@far.test": s / 10}, NOW) for s in range(5))
    )
    assert await deliverability.latest_scores(ann.id, ["a@far.test", "b@far.test"]) == {
        "a@far.test": 0.3,
        "b@far.test": 0.8,
    }
    assert len(await deliverability.latest_scores(bob.id, ["c@far.test"])) == 1
    await deliverability.add_outcomes(
        ann.id,
        [
            outcome("a@far.test", Outcome.DELIVERED),
            outcome("b@far.test", Outcome.HARD_BOUNCE),
            outcome("b@far.test", Outcome.SOFT_BOUNCE),  # not what the score predicts
            outcome("unscored@far.test", Outcome.HARD_BOUNCE),  # no score issued: left out
        ],
        NOW,
    )
    await deliverability.add_outcomes(bob.id, [outcome("c@far.test", Outcome.DELIVERED)], NOW)
    mine = await deliverability.calibration_pairs(ann.id, NOW - timedelta(days=1))
    assert sorted(mine) == [(0.3, False), (0.8, True)]
    everyone = await deliverability.calibration_pairs(None, NOW - timedelta(days=1))
    assert len(everyone) == 3
    assert await deliverability.calibration_pairs(ann.id, NOW + timedelta(seconds=1)) == []


async def test_suppressions_expire_and_renew(db: Database) -> None:
    ann, bob = await user("ann"), await user("bob")
    await deliverability.suppress(
        ann.id,
        "Far.test",
        reason="too many",
        history=DomainHistory(3, 5),
        now=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    [row] = await deliverability.active_suppressions(ann.id, NOW)
    assert (row.domain, row.hard_bounces, row.observations, row.reason) == (
        "far.test",
        3,
        5,
        "too many",
    )
    assert await deliverability.active_suppressions(bob.id, NOW) == []
    assert await deliverability.suppressed_among(ann.id, ["far.test", "x.test"], NOW) == {
        "far.test"
    }
    later = NOW + timedelta(hours=2)
    assert await deliverability.active_suppressions(ann.id, later) == []
    await deliverability.suppress(
        ann.id,
        "far.test",
        reason="again",
        history=DomainHistory(4, 6),
        now=later,
        expires_at=later + timedelta(hours=1),
    )
    [renewed] = await deliverability.active_suppressions(ann.id, later)
    assert (renewed.created_at, renewed.hard_bounces, renewed.reason) == (later, 4, "again")


async def test_canary_state_changes_happen_once(db: Database) -> None:
    ann, bob = await user("ann"), await user("bob")
    canary = await send_canaries.create(
        ann.id,
        [
            NewRecipient("s@far.test", "far.test", "sample", "pending", 0.2),
            NewRecipient("h@far.test", "far.test", "held", "pending", None),
        ],
        NOW,
        status="probing",
        sample_size=1,
        hold_minutes=5,
        from_address="me@example.test",
        subject="Hi",
        decision_due_at=NOW + timedelta(minutes=5),
    )
    assert (await send_canaries.get(str(canary.id), ann.id)).id == canary.id
    with pytest.raises(NotFound):
        await send_canaries.get(str(canary.id), bob.id)  # another user's: not found alike
    with pytest.raises(NotFound):
        await send_canaries.get("not-a-uuid", ann.id)
    assert await send_canaries.due(NOW) == []
    assert [c.id for c in await send_canaries.due(NOW + timedelta(minutes=5))] == [canary.id]
    # Two deciders race: exactly one wins.
    wins = await asyncio.gather(
        *(send_canaries.transition(canary.id, ["probing"], status="released") for _ in range(4))
    )
    assert sorted(wins) == [False, False, False, True]
    rows = (await send_canaries.recipients_of([canary.id]))[canary.id]
    assert [(r.email, r.role, r.position) for r in rows] == [
        ("s@far.test", "sample", 0),
        ("h@far.test", "held", 1),
    ]
    claims = await asyncio.gather(
        *(
            send_canaries.claim_recipient(rows[1].id, "pending", status="released")
            for _ in range(3)
        )
    )
    assert sorted(claims) == [False, False, True]
    # A bounce reported for a recipient that went out marks it, in the owner's canaries only.
    await send_canaries.claim_recipient(rows[0].id, "pending", status="sent", sent_at=NOW)
    await send_canaries.record_outcome(
        bob.id, "S@far.test", status="hard_bounce", smtp_code=550, enhanced_status="5.1.1", now=NOW
    )
    assert (await SendCanaryRecipient.get(id=rows[0].id)).status == "sent"
    await send_canaries.record_outcome(
        ann.id, "S@far.test", status="hard_bounce", smtp_code=550, enhanced_status="5.1.1", now=NOW
    )
    bounced = await SendCanaryRecipient.get(id=rows[0].id)
    assert (bounced.status, bounced.smtp_code, bounced.enhanced_status) == (
        "hard_bounce",
        550,
        "5.1.1",
    )
    listed, total = await send_canaries.list_for_user(ann.id, 10)
    assert total == 1 and [c.id for c in listed] == [canary.id]
