"""Quick assessment: which decisions wait for an analyst (a table), and what confirm, dismiss, raise and the clock
do with a held one, over an in-memory store that takes a decision once as the Redis one does (its Redis version is
tested in tests/integration/test_dispatch_stores.py)."""
from __future__ import annotations

import asyncio
from typing import Callable

import pytest

from dispatch.review import Held, ReviewPolicyError, load_review_policy, needs_review, parse_review_policy
from schemas.internal import Assessment, DecisionReason, Output
from schemas.units import HOUR_MS, MINUTE_MS
from tests.unit.dispatch.test_stage import T, decision, dispatcher, topics

POLICY = load_review_policy()


class MemoryReview:
    """Held decisions in dicts; each is taken once (ReviewStore: ZREM in Redis), and what a record released, the
    same record gets again (ReviewStore: a set per releasing record)."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.taken: dict[str, dict[str, Held]] = {}

    async def hold(self, held: Held) -> None:
        self.held.setdefault(held.context.decision.decision_id, held)

    async def release_person(self, person: str, upto: int, by: str) -> list[Held]:
        return self._released(lambda h: h.context.decision.person == person, upto, by)

    async def release_partition(self, partition: int, upto: int, by: str) -> list[Held]:
        return self._released(lambda h: h.partition == partition, upto, by)

    def _released(self, theirs: Callable[[Held], bool], upto: int, by: str) -> list[Held]:
        for wid in [w for w, h in self.held.items() if theirs(h) and h.deadline <= upto]:
            self.taken.setdefault(by, {})[wid] = self.held.pop(wid)
        return sorted(self.taken.get(by, {}).values(), key=lambda h: (h.deadline, h.context.decision.ts))

    async def take(self, decision_id: str) -> Held | None:
        return self.held.pop(decision_id, None)

    async def forget(self, subject_id: str) -> int:
        return 0


def with_case(tier: str, ts: int = T, decision_id: str = ""):  # type: ignore[no-untyped-def]
    d = decision(tier, ts, decision_id=decision_id)
    d.reasons = [DecisionReason(code="CASE_ELEMENT_CONTACT", detail="x")]
    return d


@pytest.mark.parametrize(("d", "held_by"), [
    (decision("T1"), None),  # money is moving: never waits
    (decision("T2"), "strong-signs-without-a-case"),
    (with_case("T2"), None),  # a case element is evidence enough
    (decision("T3"), "reminders-without-a-case"),
    (with_case("T3"), None),
    (decision("T2", rose=False), None),  # not a warning
])
def test_which_decisions_wait(d, held_by) -> None:  # type: ignore[no-untyped-def]
    rule = needs_review(POLICY, d)
    assert (rule.name if rule else None) == held_by


@pytest.mark.parametrize(("text", "error"), [
    ('[[rule]]\ntier = "T1"\nwithin = 5', "T1 never waits"),
    ('[[rule]]\ntier = "T2"\nwithin = 0', "within"),
    ('[[rule]]\ntier = "T2"\nfraud_type = "bogus"\nwithin = 5', "unknown fraud type"),
    ('[[rule]]\ntier = "T2"\nwithin = 5\nbefore = 1', "unknown keys"),
])
def test_a_bad_policy_is_refused_with_its_rule(text: str, error: str) -> None:
    with pytest.raises(ReviewPolicyError, match=error):
        parse_review_policy(text)


def reviewed():  # type: ignore[no-untyped-def]
    d, escalation, heard = dispatcher()
    d.review, d.review_policy = MemoryReview(), POLICY  # type: ignore[assignment]
    events: list[str] = []
    d.on_review = lambda event, decision, wait_ms: events.append(event)
    d.wall_ms = lambda: 1_000
    return d, events


def assess(action: str, **kw: object) -> Assessment:
    return Assessment(decision_id=f"w-T2-{T}", action=action, analyst="analyst-1", ts=61_000, **kw)  # type: ignore[arg-type]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_a_held_t2_is_dispatched_only_when_an_analyst_confirms_and_only_once() -> None:
    d, events = reviewed()
    assert run(d.handle(decision("T2"))) == [] and events == ["held"]
    out = run(d.handle_assessment(assess("confirm")))
    assert topics(out) == ["dispatch.phone", "dispatch.visit", "warnings"] and out[0].value.warning_id == f"w-T2-{T}"
    assert run(d.handle_assessment(assess("confirm"))) == [] and events == ["held", "confirmed", "late"]


def test_a_dismissal_sends_nothing_and_labels_a_false_alarm_with_the_reason() -> None:
    d, events = reviewed()
    run(d.handle(decision("T2")))
    out: list[Output] = run(d.handle_assessment(assess("dismiss", reason="家人确认是正常购房款")))
    assert topics(out) == ["outcomes"] and events == ["held", "dismissed"]
    o = out[0].value
    assert (o.warning_id, o.outcome, o.channel, o.ts, o.note) == (f"w-T2-{T}", "false_alarm", "phone", T,
                                                                  "analyst-1: 家人确认是正常购房款")
    assert run(d.handle(decision("T2", T + 40 * MINUTE_MS, decision_id="later"))) == []  # held in turn: no cooldown
    assert run(d.handle_assessment(assess("confirm"))) == []  # the dismissed one is gone


def test_raise_dispatches_at_the_higher_tier_keeping_the_id() -> None:
    d, events = reviewed()
    run(d.handle(decision("T3")))
    a = Assessment(decision_id=f"w-T3-{T}", action="raise", analyst="a", ts=1, tier="T2")
    out = run(d.handle_assessment(a))
    warning = next(o.value for o in out if o.topic == "warnings")
    assert (warning.warning_id, warning.tier) == (f"w-T3-{T}", "T2") and "dispatch.visit" in topics(out)


def test_no_assessment_in_time_dispatches_as_routed_once_and_a_late_confirm_sends_nothing() -> None:
    d, events = reviewed()
    run(d.handle(decision("T2")))
    assert run(d.handle(with_case("T3", T + 29 * MINUTE_MS, decision_id="on-at-once"))) != []
    assert events == ["held"]  # 29 minutes: still waiting
    out = run(d.handle(decision("T2", T + 31 * MINUTE_MS, rose=False)))  # the person's next one, past 30 minutes
    assert "timed_out" in events and any(o.topic == "warnings" and o.value.warning_id == f"w-T2-{T}" for o in out)
    assert run(d.handle_assessment(assess("confirm"))) == [] and events[-1] == "late"


def someone_else(ts: int):  # type: ignore[no-untyped-def]
    other = decision("T3", ts, decision_id=f"other-{ts}", rose=False)
    other.person = other.subject_id = "S2"
    return other


def warned(outputs: list[Output]) -> list[tuple[str, str]]:
    return [(o.value.warning_id, o.value.tier) for o in outputs if o.topic == "warnings"]


def test_the_deadline_releases_a_held_decision_in_its_persons_order_not_by_other_peoples_time() -> None:
    # a T3 held for 8 hours, and the same person's T1 two hours later: whoever's time runs ahead elsewhere, the
    # T1 goes out first and the T3 after it is held back by the cooldown
    d, events = reviewed()
    run(d.handle(decision("T3"), partition=4))
    assert run(d.handle(someone_else(T + 9 * HOUR_MS), partition=5)) == []  # another partition, far ahead
    assert warned(run(d.handle(decision("T1", T + 2 * HOUR_MS), partition=4))) == [(f"w-T1-{T + 2 * HOUR_MS}", "T1")]
    assert run(d.progressed(4, T + 9 * HOUR_MS)) == [] and events == ["held", "timed_out"]  # released, held back


def test_a_deadline_passed_before_the_persons_next_decision_releases_the_held_one_first_either_way() -> None:
    # the held T3's deadline passes, then the person's T1: released by the partition's progress or by the T1
    # itself, the T3 goes out before the T1, which rises above it
    later = T + 9 * HOUR_MS
    sent = []
    for progress_first in (True, False):
        d, events = reviewed()
        run(d.handle(decision("T3"), partition=4))
        out = run(d.progressed(4, T + 8 * HOUR_MS)) if progress_first else []
        out += run(d.handle(decision("T1", later), partition=4))
        sent.append(warned(out))
    assert sent[0] == sent[1] == [(f"w-T3-{T}", "T3"), (f"w-T1-{later}", "T1")]


def test_a_progress_record_read_again_releases_the_same_decisions_again() -> None:
    # a worker killed after the release and before the sends reads the record again: the same warning, same id
    d, events = reviewed()
    run(d.handle(decision("T3"), partition=4))
    first = warned(run(d.progressed(4, T + 8 * HOUR_MS)))
    assert first == [(f"w-T3-{T}", "T3")] and warned(run(d.progressed(4, T + 8 * HOUR_MS))) == first
    assert warned(run(d.progressed(4, T + 9 * HOUR_MS))) == []  # a later record: nothing left to release
