"""The contact index: reverse mining within the lookback, forward matching, retraction, expiry, bounds, fan-out."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.internal import Contact
from schemas.records import Indicator
from schemas.units import HOUR_MS
from streams.value_index import (
    MAX_CONTACTS,
    Entry,
    IndexPolicy,
    ValueHead,
    decode_entry,
    encode_entry,
    forget_person,
)
from streams.value_index import add_contact as _add_contact
from streams.value_index import apply_indicator as _apply_indicator

T0 = 1_764_547_200_000
KEY = "phone:+8617000001111"
POLICY = IndexPolicy()


@dataclass
class ValueState:
    """A value's head and its entries, as the agent keeps them in the table."""

    head: ValueHead = field(default_factory=ValueHead)
    entries: dict[str, Entry] = field(default_factory=dict)


def add_contact(state: ValueState, c: Contact, policy: IndexPolicy, track_fanout: bool = False):  # type: ignore[no-untyped-def]
    return _add_contact(state.head, state.entries, c, policy, track_fanout)


def apply_indicator(state: ValueState, key: str, ind: Indicator, policy: IndexPolicy):  # type: ignore[no-untyped-def]
    return _apply_indicator(state.head, state.entries, key, ind, policy)


def contact(person: str, hours: float, n: int = 0) -> Contact:
    return Contact(value_key=KEY, person=person, ts=T0 + int(hours * HOUR_MS), event_id=f"{person}-{n}")


def indicator(hours: float, action: str = "add", expires_h: float | None = None) -> Indicator:
    return Indicator(type="phone", value=KEY.split(":", 1)[1], action=action, fraud_type="impersonate_authority",
                     confidence=0.9, source="case-7", ts=T0 + int(hours * HOUR_MS),
                     expires_ts=None if expires_h is None else T0 + int(expires_h * HOUR_MS))


def people(hits: list) -> list[str]:
    return sorted(p for p, _ in hits)


@pytest.mark.parametrize(("hours_before", "found"), [(1, True), (30, True), (71.9, True), (72, True),
                                                     (72.1, False), (80, False)])
def test_reverse_mining_reaches_back_72h(hours_before: float, found: bool) -> None:
    state = ValueState()
    add_contact(state, contact("alice", 100 - hours_before), POLICY)
    hits = apply_indicator(state, KEY, indicator(100), POLICY).hits
    assert people(hits) == (["alice"] if found else [])
    if found:
        assert hits[0][1].mode == "reverse" and hits[0][1].fraud_type == "impersonate_authority"


def test_forward_match_after_the_indicator() -> None:
    state = ValueState()
    assert apply_indicator(state, KEY, indicator(0), POLICY).hits == []
    hits = add_contact(state, contact("bob", 2), POLICY).hits
    assert people(hits) == ["bob"] and hits[0][1].mode == "forward"


def test_retracted_indicator_matches_nothing_after_its_retraction() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(0), POLICY)
    assert apply_indicator(state, KEY, indicator(5, action="retract"), POLICY).hits == []
    assert add_contact(state, contact("carol", 6), POLICY).hits == []
    # a contact from before the retraction that arrives late still is what it was: a contact with a case element
    assert people(add_contact(state, contact("dave", 4), POLICY).hits) == ["dave"]


def test_expired_indicator_stops_matching() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(0, expires_h=10), POLICY)
    assert people(add_contact(state, contact("erin", 9), POLICY).hits) == ["erin"]
    assert add_contact(state, contact("frank", 11), POLICY).hits == []


def test_latest_contact_decides_and_is_the_evidence() -> None:
    state = ValueState()
    add_contact(state, contact("gina", 0, 1), POLICY)
    add_contact(state, contact("gina", 20, 2), POLICY)
    (person, hit), = apply_indicator(state, KEY, indicator(90), POLICY).hits
    assert (person, hit.event_id, hit.contact_ts) == ("gina", "gina-2", T0 + 20 * HOUR_MS)


def test_index_forgets_by_event_time_and_is_bounded() -> None:
    policy = IndexPolicy(max_people=3)
    state = ValueState()
    overflow = [add_contact(state, contact(person, i), policy).overflow for i, person in enumerate("abcde")]
    assert len(state.entries) == 3 and overflow == [False, False, False, True, True]
    add_contact(state, contact("z", 200), policy)  # watermark moves on: the old entries expire
    assert sorted(state.entries) == ["z"]


def test_a_repeat_contact_changes_the_entry_not_the_head_and_still_matches() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(0), POLICY)
    assert add_contact(state, contact("bob", 1.0, 1), POLICY).head_changed
    again = add_contact(state, contact("bob", 1.5, 2), POLICY)
    assert not again.head_changed and state.entries["bob"].last_event_id == "bob-2" and people(again.hits) == ["bob"]
    add_contact(state, contact("bob", 1.5, 2), POLICY)  # redelivered: kept once
    assert [e for _, e in state.entries["bob"].contacts] == ["bob-1", "bob-2"]


def test_an_entry_keeps_the_first_contact_and_the_latest() -> None:
    state = ValueState()
    for i in range(MAX_CONTACTS + 5):
        add_contact(state, contact("bob", i * 0.5, i), POLICY)
    kept = [e for _, e in state.entries["bob"].contacts]
    assert len(kept) == MAX_CONTACTS and kept[0] == "bob-0" and kept[-1] == f"bob-{MAX_CONTACTS + 4}"


def test_reverse_mining_hits_every_contact_kept_within_the_span() -> None:
    state = ValueState()
    for i, h in enumerate([1.0, 1.5, 3.0]):
        add_contact(state, contact("bob", h, i), POLICY)
    mined = apply_indicator(state, KEY, indicator(2.0), POLICY).hits
    assert sorted(h.event_id for _, h in mined) == ["bob-0", "bob-1", "bob-2"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("pqrstu"), st.floats(0, 150)), min_size=1, max_size=12),
       st.floats(60, 150), st.randoms())
def test_hits_do_not_depend_on_arrival_order(contacts: list, add_h: float, rnd) -> None:
    """The same contacts and indicator in any arrival order give the same hits: each person's contacts within the
    span, whether matched on arrival or mined when the indicator came (event time decides, not arrival).

    Holds while disorder stays within the late tolerance; the inputs here span 150 h, so the tolerance does too.
    """
    policy = IndexPolicy(late_tolerance_ms=150 * HOUR_MS)
    msgs = [("c", contact(p, h, i)) for i, (p, h) in enumerate(contacts)] + [("i", indicator(add_h))]

    def run(order: list) -> set[tuple[str, int, str]]:
        state, found = ValueState(), set()
        for kind, m in order:
            hits = (add_contact(state, m, policy) if kind == "c" else apply_indicator(state, KEY, m, policy)).hits
            found |= {(p, h.contact_ts, h.event_id) for p, h in hits}
        return found

    shuffled = msgs[:]
    rnd.shuffle(shuffled)
    reference = run(sorted(msgs, key=lambda km: km[1].ts))
    assert run(shuffled) == reference


def test_contact_later_than_the_tolerance_is_not_indexed() -> None:
    state = ValueState()
    add_contact(state, contact("late", 200), POLICY)
    add_contact(state, contact("early", 200 - 74), POLICY)  # 74 h behind: beyond 72 h lookback + 1 h tolerance
    assert sorted(state.entries) == ["late"]


def test_fanout_tells_everyone_reached_once() -> None:
    policy = IndexPolicy(fanout_threshold=3)
    state = ValueState()
    out = []
    for i, person in zip(itertools.count(), ["a", "b", "c", "d", "a"]):
        out += add_contact(state, contact(person, i * 0.1), policy, track_fanout=True).hits
    assert sorted(p for p, _ in out) == ["a", "b", "c", "d"]
    assert all(h.mode == "fanout" and h.fanout >= 3 for _, h in out)


def test_second_case_naming_the_value_keeps_the_first_add() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(100), POLICY)
    hits = apply_indicator(state, KEY, indicator(150), POLICY).hits
    assert state.head.span is not None and state.head.span.add_ts == T0 + 100 * HOUR_MS
    late = add_contact(state, contact("old", 40), POLICY)  # 60 h before the first add: still within reach
    assert hits == [] and people(late.hits) == ["old"]
    assert apply_indicator(state, KEY, indicator(160), POLICY).hits == []  # hit once, not again by each case


def test_a_re_add_that_moves_the_end_later_hits_only_the_contacts_it_now_reaches() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(0, expires_h=10), POLICY)
    add_contact(state, contact("inside", 5), POLICY)
    add_contact(state, contact("after", 12), POLICY)  # after the expiry: no hit yet
    hits = apply_indicator(state, KEY, indicator(8, expires_h=20), POLICY).hits
    assert people(hits) == ["after"]


def notified(notices: list) -> list[tuple[str, float, float, float]]:
    """(person, add, end, when it became known), in hours."""
    return sorted((p, (n.add_ts - T0) / HOUR_MS, (n.end_ts - T0) / HOUR_MS, (n.ts - T0) / HOUR_MS) for p, n in notices)


def test_retraction_tells_everyone_listed_when_the_span_ends() -> None:
    state = ValueState()
    add_contact(state, contact("alice", -5), POLICY)
    assert people(apply_indicator(state, KEY, indicator(0), POLICY).hits) == ["alice"]
    assert people(add_contact(state, contact("bob", 2), POLICY).hits) == ["bob"]
    up = apply_indicator(state, KEY, indicator(5, action="retract"), POLICY)
    assert up.hits == [] and notified(up.notices) == [("alice", 0, 5, 5), ("bob", 0, 5, 5)]
    assert {n.source for _, n in up.notices} == {"case-7"} and {n.value_key for _, n in up.notices} == {KEY}


def test_after_a_retraction_a_contact_gives_no_hit_and_a_late_earlier_one_knows_the_end() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(0), POLICY)
    (_, forward), = add_contact(state, contact("bob", 2), POLICY).hits
    assert forward.end_ts is None  # open: nobody knows yet when it ends
    apply_indicator(state, KEY, indicator(5, action="retract"), POLICY)
    assert add_contact(state, contact("carol", 6), POLICY).hits == []
    (_, late), = add_contact(state, contact("dave", 4), POLICY).hits
    assert late.end_ts == T0 + 5 * HOUR_MS


def test_a_hit_carries_its_expiry() -> None:
    state = ValueState()
    apply_indicator(state, KEY, indicator(0, expires_h=10), POLICY)
    (_, h), = add_contact(state, contact("erin", 9), POLICY).hits
    assert h.end_ts == T0 + 10 * HOUR_MS


def test_a_redelivered_retraction_sends_its_notices_again_and_only_an_earlier_end_moves_the_span() -> None:
    state = ValueState()
    add_contact(state, contact("alice", -5), POLICY)
    apply_indicator(state, KEY, indicator(0), POLICY)
    first = apply_indicator(state, KEY, indicator(5, action="retract"), POLICY).notices
    # its head write may have landed while its sends did not: the same notices again
    assert apply_indicator(state, KEY, indicator(5, action="retract"), POLICY).notices == first
    assert apply_indicator(state, KEY, indicator(8, action="retract"), POLICY).notices == []  # ended already
    assert notified(apply_indicator(state, KEY, indicator(3, action="retract"), POLICY).notices) == [("alice", 0, 3, 3)]
    assert state.head.span is not None and state.head.span.end_ts == T0 + 3 * HOUR_MS


def test_a_re_add_that_shortens_the_span_tells_everyone_and_never_before_its_own_time() -> None:
    state = ValueState()
    add_contact(state, contact("alice", -5), POLICY)
    apply_indicator(state, KEY, indicator(0), POLICY)
    assert notified(apply_indicator(state, KEY, indicator(2, expires_h=10), POLICY).notices) == [("alice", 0, 10, 2)]
    assert apply_indicator(state, KEY, indicator(3, expires_h=20), POLICY).notices == []  # later: not an end
    assert notified(apply_indicator(state, KEY, indicator(4, expires_h=1), POLICY).notices) == [("alice", 0, 4, 4)]


def test_people_hit_in_reverse_stay_listed_while_the_hit_counts() -> None:
    state = ValueState()
    add_contact(state, contact("old", -71), POLICY)
    apply_indicator(state, KEY, indicator(0), POLICY)
    add_contact(state, contact("new", 26), POLICY)  # a day on: the index prunes what is beyond retention
    assert sorted(state.head.people) == ["new", "old"]  # its reverse hit (at the add) still counts
    assert people(apply_indicator(state, KEY, indicator(27, action="retract"), POLICY).notices) == ["new", "old"]
    add_contact(state, contact("newer", 74), POLICY)  # the hit has left every window: forgotten
    assert sorted(state.head.people) == ["new", "newer"]


def test_an_entry_stored_before_entries_kept_every_contact_is_read() -> None:
    raw = msgspec.msgpack.encode([T0, "bob-1", T0 + HOUR_MS, "bob-2"])
    assert decode_entry(raw).contacts == [(T0, "bob-1"), (T0 + HOUR_MS, "bob-2")]
    assert decode_entry(encode_entry(Entry([(T0, "bob-1")]))).contacts == [(T0, "bob-1")]


def test_a_full_entry_drops_contacts_no_indicator_reaches_first() -> None:
    state = ValueState()
    for i in range(MAX_CONTACTS):
        add_contact(state, contact("bob", i, i), POLICY)  # hours 0 … 15
    add_contact(state, contact("bob", 80, 80), POLICY)  # retention reaches back to hour 7 now
    assert [e for _, e in state.entries["bob"].contacts] == [f"bob-{i}" for i in (*range(7, MAX_CONTACTS), 80)]


def test_a_person_pruned_from_a_value_leaves_its_newcomers_too() -> None:
    """Bob, then Alice reach the number; Bob calls on for days, Alice never again: when she is pruned, no trace of
    her stays in the head (an erasure finds a person through their entries, so one left in the head is kept)."""
    state = ValueState()
    for who, hours in (("bob", 0), ("alice", 0.5), ("bob", 50), ("bob", 80), ("bob", 105)):
        add_contact(state, contact(who, hours, int(hours)), POLICY, track_fanout=True)
    assert "alice" not in state.entries and state.head.people == ["bob"]
    assert all(p != "alice" for _, p in state.head.newcomers)


def test_an_erased_person_leaves_the_value_and_every_mention_in_its_head() -> None:
    state = ValueState()
    for who in ("bob", "alice"):
        add_contact(state, contact(who, 1), POLICY, track_fanout=True)
    state.head.fanout_flagged = ["alice", "bob"]
    assert forget_person(state.head, state.entries, "alice")
    assert list(state.entries) == ["bob"] and state.head.people == ["bob"] and state.head.fanout_flagged == ["bob"]
    assert [p for _, p in state.head.newcomers] == ["bob"]
    assert not forget_person(state.head, state.entries, "alice")  # again: nothing left to change
