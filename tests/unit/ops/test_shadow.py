"""The shadow report's comparison: persons warned by each side at their highest tier, transfers stopped, precision on
the persons outcomes label, each decision once, only the period's."""
from __future__ import annotations

from ops.shadow import compare
from schemas.internal import Decision, TransferRef
from schemas.records import Outcome

T = 1_764_547_200_000


def d(wid: str, person: str, tier: str, ts: int = T, rose: bool = True, transfer: str | None = None,
      version: str = "live") -> Decision:
    ref = TransferRef(transfer_id=transfer, payer_account="a", payee_account="b", amount_fen=100, ts=ts) \
        if transfer else None
    return Decision(decision_id=wid, person=person, subject_id=person, tier=tier, rose=rose,  # type: ignore[arg-type]
                    fraud_type="romance", type_probability=0.5, score=0.5, reasons=[], evidence=[], ts=ts,
                    episode_ts=ts, model_version=version, policy_version="p", transfer=ref)


def o(wid: str, outcome: str, ts: int = T) -> Outcome:
    return Outcome(warning_id=wid, channel="visit", outcome=outcome, ts=ts)  # type: ignore[arg-type]


def test_added_removed_and_changed_tier_are_persons_at_their_highest_tier() -> None:
    live = [d("l1", "A", "T3"), d("l2", "A", "T2"), d("l3", "B", "T3"), d("l4", "C", "T1", transfer="TR1"),
            d("l5", "C", "T1", rose=False, transfer="TR2")]
    cand = [d("c1", "A", "T2", version="cand"), d("c2", "C", "T1", transfer="TR1", version="cand"),
            d("c3", "D", "T3", version="cand"), d("c3", "D", "T3", version="cand")]  # a run repeated
    r = compare(live, cand, [])
    assert (r.added, r.removed, r.changed_tier) == (["D"], ["B"], [])  # A is T2 on both sides
    assert (r.stops_added, r.stops_removed) == ([], ["TR2"])
    assert (r.live.warned, r.live.by_tier, r.live.stops) == (3, {"T1": 1, "T2": 1, "T3": 1}, 2)
    assert (r.candidate.warned, r.candidate.version) == (3, "cand/p")


def test_precision_counts_each_labelled_person_once_on_either_side() -> None:
    live = [d("l1", "A", "T3"), d("l2", "B", "T3"), d("l3", "C", "T2")]
    cand = [d("c1", "A", "T2"), d("c3", "C", "T2"), d("c4", "E", "T3")]
    outcomes = [o("l1", "dissuaded"), o("l2", "false_alarm"), o("l3", "false_alarm", T),
                o("l3", "already_lost", T + 1), o("l1", "sms_delivered"), o("unknown", "dissuaded")]
    r = compare(live, cand, outcomes)
    assert (r.live.labelled, r.live.right, r.live.precision) == (3, 2, 0.6667)  # A and C right, B a false alarm
    assert (r.candidate.labelled, r.candidate.right, r.candidate.precision) == (2, 2, 1.0)  # E has no label
    assert r.changed_tier == [("A", "T3", "T2")]


def test_only_the_periods_decisions_count() -> None:
    live = [d("l1", "A", "T3", ts=T - 1), d("l2", "B", "T3", ts=T), d("l3", "C", "T3", ts=T + 10)]
    r = compare(live, [d("c1", "B", "T3")], [], since=T, until=T + 10)
    assert (r.live.warned, r.added, r.removed) == (1, [], [])
    assert compare([], [], []).live.precision is None
