"""Bounce risk, batch evidence and staged-send decisions: the pure rules behind the routes."""

from __future__ import annotations

import pytest

from mailcue_server.mail.batch_evidence import Evidence, batch_evidence, local_shape
from mailcue_server.mail.bounce_risk import (
    CATCH_ALL_PRIOR,
    DomainHistory,
    RiskInputs,
    assess,
    calibrate,
    crosses_limit,
    select_within_budget,
)
from mailcue_server.mail.canary_plan import Member, judge_domains, plan_roles, summarise


@pytest.mark.parametrize(
    ("local", "shape"),
    [
        ("john.smith", "word.word"),
        ("j.smith", "x.word"),
        ("jsmith", "word"),
        ("john_smith2", "word_mixed"),
        ("sales+eu", "word"),
        ("1234", "9"),
    ],
)
def test_local_part_shapes(local: str, shape: str) -> None:
    assert local_shape(local) == shape


def test_a_domain_convention_needs_enough_addresses() -> None:
    few = batch_evidence([("ann.lee", "a.test"), ("bo", "a.test")])
    assert [e.matches_domain_pattern for e in few] == [None, None]
    many = batch_evidence(
        [("ann.lee", "a.test"), ("bob.ray", "a.test"), ("cy.dunn", "a.test"), ("dxq", "a.test")]
    )
    assert [e.matches_domain_pattern for e in many] == [True, True, True, False]


def test_spellings_of_one_name_are_permutations() -> None:
    found = batch_evidence(
        [
            ("john.smith", "corp.test"),
            ("jsmith", "corp.test"),
            ("smithj", "corp.test"),
            ("mary.jones", "corp.test"),
            ("jsmith", "other.test"),  # another domain: not a guess at the same person
        ]
    )
    assert [e.permutation_variant for e in found] == [True, True, True, False, False]


def test_risk_follows_what_validation_found() -> None:
    valid = assess(RiskInputs(status="valid"))
    invalid = assess(RiskInputs(status="invalid"))
    assert (valid.level, valid.action) == ("low", "send") and valid.score < 0.05
    assert (invalid.level, invalid.action) == ("high", "hold") and invalid.score > 0.9
    unknown = assess(RiskInputs(status="undetermined"))
    assert (unknown.level, unknown.action) == ("unknown", "caution")


def test_catch_all_risk_learns_from_the_domain() -> None:
    fresh = assess(RiskInputs(status="catch_all"))
    assert fresh.score == pytest.approx(CATCH_ALL_PRIOR, abs=1e-3)
    assert (fresh.source, fresh.sample_size) == ("no_history", 0)
    clean = assess(RiskInputs(status="catch_all", domain=DomainHistory(0, 90)))
    dirty = assess(RiskInputs(status="catch_all", domain=DomainHistory(45, 90)))
    assert clean.source == "domain_history" and clean.sample_size == 90
    assert clean.score < 0.02 < CATCH_ALL_PRIOR < 0.4 < dirty.score
    assert clean.confidence > fresh.confidence
    assert "45 of 90" in dirty.explanation


def test_batch_evidence_and_history_move_the_score() -> None:
    base = assess(RiskInputs(status="catch_all")).score
    guessed = assess(RiskInputs(status="catch_all", permutation_variant=True))
    off_pattern = assess(RiskInputs(status="catch_all", matches_domain_pattern=False))
    on_pattern = assess(RiskInputs(status="catch_all", matches_domain_pattern=True))
    assert on_pattern.score < base < off_pattern.score < guessed.score
    assert [c.label for c in guessed.contributions] == ["permutation_variant"]
    bounced = assess(RiskInputs(status="valid", last_outcome="hard_bounce"))
    assert bounced.score >= 0.95 and bounced.source == "exact_history"
    assert bounced.contributions[-1].label == "exact_history"


def test_budget_takes_the_largest_set_that_fits() -> None:
    scored = [("a", 0.5), ("b", 0.01), ("c", 0.02), ("d", 0.1), ("e", 0.9)]
    chosen = select_within_budget(scored, 0.05)
    assert chosen.included == ("b", "c", "d")  # mean 0.0433; adding "a" would be 0.1575
    assert chosen.excluded == ("a", "e")
    assert chosen.projected == pytest.approx(0.0433, abs=1e-4)
    assert select_within_budget(scored, 0.0).included == ()
    assert select_within_budget(scored, 1.0).excluded == ()


def test_calibration_figures() -> None:
    assert calibrate([]).sample_size == 0 and calibrate([]).brier_score is None
    figures = calibrate([(0.1, False), (0.1, True), (0.9, True), (0.95, True)])
    assert figures.sample_size == 4
    assert figures.brier_score == pytest.approx((0.01 + 0.81 + 0.01 + 0.0025) / 4, abs=1e-4)
    assert [(b.lower, b.upper, b.count, b.observed_rate) for b in figures.bins] == [
        (0.1, 0.2, 2, 0.5),
        (0.9, 1.0, 2, 1.0),
    ]
    assert figures.observed_rate == 0.75


def test_suppression_limit() -> None:
    assert not crosses_limit(DomainHistory(4, 4), limit=0.1, min_observations=5)
    assert crosses_limit(DomainHistory(1, 5), limit=0.1, min_observations=5)
    assert not crosses_limit(DomainHistory(1, 10), limit=0.1, min_observations=5)  # at, not over


def test_the_sample_is_the_first_recipients_of_each_domain() -> None:
    assert plan_roles(["a", "b", "a", "a", "b", "c"], 2) == [
        "sample",
        "sample",
        "sample",
        "held",
        "sample",
        "sample",
    ]


def test_each_domain_is_judged_on_its_own_sample() -> None:
    members = [
        Member("good.test", "sample", "sent"),
        Member("good.test", "held", "pending"),
        Member("bad.test", "sample", "hard_bounce"),
        Member("bad.test", "sample", "delivered"),
        Member("bad.test", "held", "pending"),
        Member("paused.test", "sample", "sent"),
        Member("paused.test", "held", "pending"),
        Member("lost.test", "sample", "skipped"),
        Member("lost.test", "held", "pending"),
        Member("done.test", "sample", "sent"),  # nothing held: no verdict needed
    ]
    verdicts = judge_domains(members, threshold=0.25, suppressed=frozenset({"paused.test"}))
    assert [(v.domain, v.release) for v in verdicts] == [
        ("good.test", True),
        ("bad.test", False),
        ("paused.test", False),
        ("lost.test", False),
    ]
    assert verdicts[1].reason == "1 of 2 sampled at bad.test hard-bounced (50% > 25%)"
    released, reason = summarise(verdicts)
    assert released and reason.startswith("Released good.test; blocked: ")
    assert summarise([]) == (True, "Every recipient was in the sample; nothing was held")
    assert Evidence() == Evidence(None, False)
