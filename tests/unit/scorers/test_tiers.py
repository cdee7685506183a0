"""Tier boundaries, T1 on money moving after a script, no T1 or T2 on one weak signal, hysteresis without
flapping, and the policy file's validation."""
from __future__ import annotations

import json

import pytest

from schemas.internal import RiskState
from scorers.tiers import POLICY_FILE, Evidence, PolicyError, TierPolicy, assign_tier

P = TierPolicy.load()
H = 3_600_000
T = 1_764_547_200_000
NONE = Evidence()
SCRIPT = Evidence(stages=2)  # two stages of a scam script in one session
PAY_NEW = Evidence(transfer_now=True, transfer_to_new_payee=True)
PAY_AFTER = Evidence(transfer_now=True, transfer_to_new_payee=True, stages=2, transfer_after_stages=2)
PAY_AFTER_3 = Evidence(transfer_now=True, transfer_to_new_payee=True, stages=3, transfer_after_stages=3)


@pytest.mark.parametrize(("score", "ev", "tier"), [
    (0.0, NONE, None),
    (P.t3_score - 1e-9, NONE, None),
    (P.t3_score, NONE, "T3"),
    (0.0, Evidence(strong_hit=True), "T3"),
    (P.t2_score - 1e-9, SCRIPT, "T3"),
    (P.t2_score, SCRIPT, "T2"),
    (1.0, NONE, "T3"),  # one weak signal, however high it scores, is no T2
    (1.0, Evidence(stages=1), "T3"),
    (1.0, Evidence(strong_hit=True, stages=1), "T2"),  # a case element contacted and a stage of steering
    (1.0, SCRIPT, "T2"),  # no money moving: never T1 on the score alone
    (P.t1_score, PAY_AFTER, "T1"),
    (1.0, PAY_NEW, "T3"),  # a first payee with no script before it: no stop-payment, whatever the score
    (0.0, PAY_AFTER_3, "T1"),  # a three-stage script then a first payee: the conjunction alone
    (0.0, Evidence(transfer_now=True, payee_flagged=True), "T1"),  # paying a case account: always
    (0.99, Evidence(transfer_now=True, stages=2, transfer_after_stages=2), "T2"),  # a known payee: no stop
])
def test_tier_boundaries(score: float, ev: Evidence, tier: str | None) -> None:
    assert assign_tier(score, ev, None, T, P).tier == tier


def test_person_already_at_t2_paying_a_new_payee_after_the_script_is_t1() -> None:
    prior = RiskState("T2", T, T)
    d = assign_tier(0.0, PAY_AFTER, prior, T + H, P)
    assert (d.tier, d.rose, d.stop_payment) == ("T1", True, True)
    d = assign_tier(0.0, PAY_NEW, prior, T + H, P)  # paying someone new with no script before it: held at T2
    assert (d.tier, d.rose, d.stop_payment) == ("T2", False, False)


def test_tier_rises_and_does_not_flap() -> None:
    d1 = assign_tier(P.t3_score, NONE, None, T, P)
    d2 = assign_tier(P.t2_score, SCRIPT, d1.risk, T + H, P)
    d3 = assign_tier(P.t3_score, NONE, d2.risk, T + 2 * H, P)  # the score falls back: the tier is held
    d4 = assign_tier(P.t2_score, SCRIPT, d3.risk, T + 3 * H, P)  # and rises again: no new warning
    assert [(d.tier, d.rose) for d in (d1, d2, d3, d4)] == [("T3", True), ("T2", True), ("T2", False),
                                                              ("T2", False)]
    assert d4.risk is not None and d4.risk.episode_ts == T


def test_every_new_transfer_at_t1_asks_for_a_stop_payment_but_warns_once() -> None:
    d1 = assign_tier(0.9, PAY_AFTER, None, T, P)
    d2 = assign_tier(0.9, PAY_AFTER, d1.risk, T + 10 * 60_000, P)
    assert (d1.rose, d1.stop_payment, d2.rose, d2.stop_payment) == (True, True, False, True)


def test_a_transfer_is_asked_to_stop_once_however_many_moments_justify_t1() -> None:
    d1 = assign_tier(0.9, PAY_AFTER, None, T, P, transfer_id="tr-1")
    again = assign_tier(0.9, PAY_AFTER, d1.risk, T + 1, P, transfer_id="tr-1")  # a hit on its payee, say
    other = assign_tier(0.9, PAY_AFTER, again.risk, T + 2, P, transfer_id="tr-2")
    assert [d.stop_payment for d in (d1, again, other)] == [True, False, True]
    assert other.risk is not None and other.risk.stopped == ["tr-1", "tr-2"]


def test_tier_is_released_after_a_quiet_period() -> None:
    d1 = assign_tier(P.t2_score, SCRIPT, None, T, P)
    held = assign_tier(0.0, NONE, d1.risk, T + P.quiet_ms, P)
    released = assign_tier(0.0, NONE, d1.risk, T + P.quiet_ms + 1, P)
    again = assign_tier(P.t3_score, NONE, d1.risk, T + P.quiet_ms + 1, P)
    assert held.tier == "T2" and released.tier is None
    assert (again.tier, again.rose) == ("T3", True) and again.risk is not None and again.risk.episode_ts > T


def test_policy_file_is_validated() -> None:
    doc = json.loads(POLICY_FILE.read_text())
    assert TierPolicy.from_dict(doc).version == doc["version"]
    with pytest.raises(PolicyError, match="t3.score <= t2.score"):
        TierPolicy.from_dict({**doc, "t2": {"score": 0.01}})
    with pytest.raises(PolicyError, match="missing or invalid"):
        TierPolicy.from_dict({k: v for k, v in doc.items() if k != "t1"})


def test_a_moment_without_news_never_raises_nor_holds_longer() -> None:
    retraction = Evidence(transfer_now=True, payee_flagged=True, news=False)  # whatever else it says
    assert assign_tier(1.0, retraction, None, T, P) == assign_tier(0.0, NONE, None, T, P)
    prior = RiskState("T3", T, T)
    d = assign_tier(1.0, retraction, prior, T + H, P)
    assert (d.tier, d.rose, d.stop_payment, d.risk) == ("T3", False, False, prior)
    assert assign_tier(1.0, retraction, prior, T + P.quiet_ms + H, P).risk is None  # quiet since: released
