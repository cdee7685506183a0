"""Per-person state: facts from each signal, windows in event time, hits deduplicated, controls marked."""
from __future__ import annotations

import random

import msgspec
import pytest

from schemas.internal import ControlNote, IndicatorHit, PersonEvent, RetractionNote
from schemas.records import DomainSignal, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS, HOUR_MS
from streams.person_state import (
    CallFact,
    HitFact,
    PaymentFact,
    PersonState,
    StatePolicy,
    WebFact,
    apply_event,
    as_of,
    decode_state,
    earliest_evidence,
    hit_live,
    known_key,
    new_state,
)

T0 = 1_764_547_200_000
POLICY = StatePolicy()


def call(ts_h: float, counterpart: str, n: int = 0, urls: list[str] | None = None, kind: str = "call") -> PersonEvent:
    rec = TelecomSignal(event_id=f"c{n}", ts=T0 + int(ts_h * HOUR_MS), kind=kind, direction="in",
                        subscriber="+8613800138000", counterpart=counterpart, duration_s=600, urls=urls or [],
                        counterpart_tags=["virtual_operator"])
    return PersonEvent(person="S1", subject_id="S1", source="signals.telecom", telecom=rec)


def pay(ts_h: float, payee: str, n: int = 0, first: bool | None = None, role: str = "self") -> PersonEvent:
    rec = PaymentSignal(event_id=f"p{n}", ts=T0 + int(ts_h * HOUR_MS), transfer_id=f"t{n}", status="initiated",
                        payer_account="A1", payee_account=payee, payee_bank="B", amount_fen=100_00,
                        channel="mobile", payee_first_seen=first)
    return PersonEvent(person="S1", source="signals.payment", role=role, payment=rec)


def hit(contact_h: float, indicator_h: float, event_id: str = "c0", mode: str = "reverse",
        value_key: str = "phone:+8617000001111", end_h: float | None = None) -> PersonEvent:
    h = IndicatorHit(value_key=value_key, fraud_type="romance", confidence=0.8, source="case",
                     indicator_ts=T0 + int(indicator_h * HOUR_MS), contact_ts=T0 + int(contact_h * HOUR_MS),
                     event_id=event_id, mode=mode, end_ts=None if end_h is None else T0 + int(end_h * HOUR_MS))
    return PersonEvent(person="S1", source="hit", hit=h)


def retraction(add_h: float, end_h: float, value_key: str = "phone:+8617000001111",
               ts_h: float | None = None) -> PersonEvent:
    note = RetractionNote(value_key=value_key, add_ts=T0 + int(add_h * HOUR_MS), end_ts=T0 + int(end_h * HOUR_MS),
                          ts=T0 + int((end_h if ts_h is None else ts_h) * HOUR_MS), source="case")
    return PersonEvent(person="S1", source="retraction", retraction=note)


def test_call_records_a_fact_and_indexes_the_counterpart_and_sms_domains() -> None:
    state = new_state("S1")
    up = apply_event(state, call(0, "+8617000001111", urls=["http://Fake-Refund.cn/x", "javascript:x"], kind="sms"),
                     POLICY)
    assert [c.value_key for c in up.contacts] == ["phone:+8617000001111", "domain:fake-refund.cn"]
    fact, = state.calls
    assert fact.first_contact and fact.number_kind == "mobile_cn" and fact.domains == ["fake-refund.cn"]
    assert state.subject_id == "S1"


def test_second_contact_with_a_number_is_not_first() -> None:
    state = new_state("S1")
    apply_event(state, call(0, "+8617000001111", 1), POLICY)
    apply_event(state, call(1, "+8617000001111", 2), POLICY)
    assert [c.first_contact for c in state.calls] == [True, False]


def test_bank_first_seen_flag_wins_for_outgoing_payments() -> None:
    state = new_state("S1")
    apply_event(state, pay(0, "P1", 1, first=False), POLICY)
    apply_event(state, pay(1, "P2", 2), POLICY)
    assert [p.first_contact for p in state.payments] == [False, True]


def test_incoming_transfer_is_a_fact_for_the_payee() -> None:
    state = new_state("S1")
    up = apply_event(state, pay(0, "A9", role="payee"), POLICY)
    assert state.payments[0].direction == "in" and state.payments[0].counterparty == "A1"
    assert [c.value_key for c in up.contacts] == ["account:A1"]


def test_facts_leave_the_window_in_event_time() -> None:
    state = new_state("S1")
    apply_event(state, call(0, "+8617000001111", 1), POLICY)
    apply_event(state, call(73, "+8617000002222", 2), POLICY)
    assert [c.event_id for c in state.calls] == ["c2"]


def test_event_older_than_the_window_is_counted_not_applied() -> None:
    state = new_state("S1")
    apply_event(state, call(100, "+8617000001111", 1), POLICY)
    assert apply_event(state, call(10, "+8617000002222", 2), POLICY).late
    assert len(state.calls) == 1


def test_redelivered_hit_is_one_fact_and_the_same_trigger_again() -> None:
    state = new_state("S1")
    first = apply_event(state, hit(0, 30), POLICY)
    again = apply_event(state, hit(0, 30), POLICY)
    assert len(first.triggers) == 1 and again.triggers == first.triggers and len(state.hits) == 1
    trig = first.triggers[0]
    assert trig.cause == "indicator_hit" and trig.mode == "reverse" and trig.ts == T0 + 30 * HOUR_MS
    assert state.hits[0].contact_ts == T0


def test_trigger_ids_are_stable_across_runs() -> None:
    a, b = new_state("S1"), new_state("S1")
    assert apply_event(a, hit(0, 30), POLICY).triggers == apply_event(b, hit(0, 30), POLICY).triggers


def test_state_is_bounded() -> None:
    state = new_state("S1")
    for i in range(500):
        apply_event(state, call(i / 100, f"+86170{i:08d}", i), POLICY)
    assert len(state.calls) == POLICY.max_facts and POLICY.max_known * 3 // 4 <= len(state.known) <= POLICY.max_known


def test_a_known_value_is_forgotten_once_memory_has_passed_its_last_day_and_not_before() -> None:
    """Known values are trimmed only when the memory's horizon passes a day (their last contact is kept as its
    day), not every hour: the result must be what trimming every hour gives, with contacts up to the window late."""
    policy = StatePolicy(memory_ms=4 * DAY_MS)
    state, last_day = new_state("S1"), {}
    for i in range(24 * 9):
        number = f"+86170{(i * 7) % 40 + (i // 50) * 100:08d}"  # repeats, and new numbers as days go by
        hours = i + 0.25 if i % 5 or i < 70 else i - 70 + 0.5  # every fifth contact 70 h late
        event = call(hours, number, i)
        apply_event(state, event, policy)
        assert event.telecom is not None
        last_day[number] = max(last_day.get(number, 0), event.telecom.ts - event.telecom.ts % DAY_MS)
        horizon = state.watermark - policy.memory_ms
        assert set(state.known) == {known_key(f"phone:{n}") for n, day in last_day.items() if day >= horizon}, i


def test_a_window_that_reaches_past_the_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="plus a day"):
        StatePolicy(window_ms=72 * HOUR_MS, memory_ms=3 * DAY_MS)
    StatePolicy(window_ms=72 * HOUR_MS, memory_ms=4 * DAY_MS)


def _fact_lists(rng: random.Random) -> PersonState:
    """A state with facts and hits at random times over three days, each kind in event-time order."""
    def times(n: int) -> list[int]:
        return sorted(T0 + rng.randrange(72 * HOUR_MS) for _ in range(n))
    calls = [CallFact(ts, "call", "in", "+86170", "mobile", 60, [], False, [], f"c{i}")
             for i, ts in enumerate(times(rng.randrange(6)))]
    web = [WebFact(ts, "visit", "x.cn", False, f"w{i}") for i, ts in enumerate(times(rng.randrange(4)))]
    payments = [PaymentFact(ts, f"t{i}", "initiated", "out", "X", 100, False, "mobile", f"p{i}")
                for i, ts in enumerate(times(rng.randrange(4)))]
    hits = [HitFact(ts, ts, f"phone:{i}", "romance", 0.9, "forward", ts, "case", 0, f"h{i}",
                    end_ts=ts + rng.choice([HOUR_MS, DAY_MS]) if rng.random() < 0.5 else None)
            for i, ts in enumerate(times(rng.randrange(5)))]
    return PersonState(person="S1", calls=calls, web=web, payments=payments, hits=hits)


def test_the_earliest_evidence_is_the_first_fact_in_the_window_or_live_hit() -> None:
    rng = random.Random(4)
    for _ in range(500):
        state = _fact_lists(rng)
        now, window = T0 + rng.randrange(80 * HOUR_MS), rng.choice([HOUR_MS, 12 * HOUR_MS, 3 * DAY_MS])
        lo = now - window
        times = [f.ts for facts in (state.calls, state.web, state.payments) for f in facts if lo <= f.ts <= now]
        times += [h.ts for h in state.hits if lo <= h.ts and hit_live(h, now)]
        assert earliest_evidence(state, now, window) == min(times, default=now)


def test_as_of_cuts_the_facts_ahead_of_its_time_and_leaves_the_state_alone() -> None:
    rng = random.Random(5)
    for _ in range(200):
        state, now = _fact_lists(rng), T0 + rng.randrange(80 * HOUR_MS)
        before = msgspec.msgpack.encode(state)
        seen = as_of(state, now, keep=3)
        for kind in ("calls", "web", "payments", "hits"):
            assert getattr(seen, kind) == [f for f in getattr(state, kind) if f.ts <= now][-3:]
        assert msgspec.msgpack.encode(state) == before
        assert (seen is state) == all(len(getattr(state, k)) <= 3 and all(f.ts <= now for f in getattr(state, k))
                                      for k in ("calls", "web", "payments", "hits"))


def test_control_marks_the_person_once() -> None:
    state = new_state("S1")
    ev = PersonEvent(person="S1", source="control", control=ControlNote(account="A1", source="case-1", ts=T0))
    first = apply_event(state, ev, POLICY).triggers
    assert len(first) == 1 and apply_event(state, ev, POLICY).triggers == first
    assert state.controlled_by == "case-1"


def test_replayed_signal_changes_nothing_but_resends_its_contacts() -> None:
    state = new_state("S1")
    ev = call(0, "+8617000001111", 1, urls=["http://x.cn"], kind="sms")
    first = apply_event(state, ev, POLICY)
    snapshot = msgspec.json.encode(state)
    again = apply_event(state, ev, POLICY)
    assert msgspec.json.encode(state) == snapshot
    assert again.contacts == first.contacts


def test_a_redelivered_event_whose_fact_the_cap_dropped_changes_nothing() -> None:
    """A crash can redeliver an event whose fact the cap (`max_facts`) has since dropped: it cannot be found
    among the facts, yet it must not come back, with the decisions behind it (a low floor) or ahead."""
    events = [pay(i * 0.1, f"B{i}", i) for i in range(70)]
    for floor in (T0 + HOUR_MS, 2**62):
        state = new_state("S1")
        for ev in events:
            apply_event(state, ev, POLICY)
        snapshot = msgspec.json.encode(state)
        again = apply_event(state, events[2], POLICY, floor=floor)
        assert msgspec.json.encode(state) == snapshot and not again.changed and not again.noted
        assert again.contacts == apply_event(new_state("S1"), events[2], POLICY).contacts  # the index gets it again


def test_a_late_fact_behind_what_the_cap_kept_is_dropped_once_decided_past_else_kept() -> None:
    def capped() -> PersonState:
        state = new_state("S1")
        for i in range(70):
            apply_event(state, pay(1 + i * 0.1, f"B{i}", i), POLICY)
        return state

    decided_past, still_to_decide = capped(), capped()
    kept = list(decided_past.payments)
    apply_event(decided_past, pay(0.5, "LATE", 100), POLICY, floor=T0 + HOUR_MS)
    assert decided_past.payments == kept
    apply_event(still_to_decide, pay(0.5, "LATE", 100), POLICY, floor=T0)  # a decision at 0.5 h may count it
    assert still_to_decide.payments[0].counterparty == "LATE"


def test_visit_and_install_are_web_facts() -> None:
    state = new_state("L1")
    dns = DomainSignal(event_id="d1", ts=T0, subscriber="+8613800138000", kind="dns", domain="fake.cn")
    app = DomainSignal(event_id="d2", ts=T0 + 1, subscriber="+8613800138000", kind="app_install", app="com.zoom")
    up1 = apply_event(state, PersonEvent(person="L1", source="signals.domain", domain=dns), POLICY)
    up2 = apply_event(state, PersonEvent(person="L1", source="signals.domain", domain=app), POLICY)
    assert [c.value_key for c in up1.contacts + up2.contacts] == ["domain:fake.cn", "app:com.zoom"]
    assert [(w.kind, w.target, w.first_contact) for w in state.web] == [("dns", "fake.cn", True),
                                                                     ("app_install", "com.zoom", True)]


def test_first_contact_follows_event_time_not_arrival() -> None:
    in_order, reversed_order = new_state("S1"), new_state("S1")
    early, late = call(1, "+8617000001111", 1), call(2, "+8617000001111", 2)
    for ev in (early, late):
        apply_event(in_order, ev, POLICY)
    for ev in (late, early):
        apply_event(reversed_order, ev, POLICY)
    assert msgspec.json.encode(in_order) == msgspec.json.encode(reversed_order)
    assert [c.first_contact for c in in_order.calls] == [True, False]


def test_every_contact_with_a_number_new_in_the_window_is_kept_and_an_old_one_repeated_changes_nothing() -> None:
    state = new_state("S1")
    assert apply_event(state, call(0, "+8617000001111", 1), POLICY).changed
    quick = PersonEvent(person="S1", source="signals.telecom", telecom=TelecomSignal(
        event_id="c3", ts=T0 + int(0.6 * HOUR_MS), kind="call", direction="out", subscriber="+8613800138000",
        counterpart="+8617000001111", duration_s=40))
    up = apply_event(state, quick, POLICY)  # first seen 36 minutes ago: the script may go on, so it is kept
    assert up.changed and [c.event_id for c in state.calls] == ["c1", "c3"]
    later = PersonEvent(person="S1", source="signals.telecom", telecom=TelecomSignal(
        event_id="c4", ts=T0 + 80 * HOUR_MS, kind="call", direction="out", subscriber="+8613800138000",
        counterpart="+8617000001111", duration_s=40))
    apply_event(state, later, POLICY)  # first seen 80 h ago, beyond the window: no fact
    again = apply_event(state, msgspec.structs.replace(later, telecom=msgspec.structs.replace(
        later.telecom, event_id="c5", ts=later.telecom.ts + 60_000)), POLICY)
    assert not again.changed and [c.value_key for c in again.contacts] == ["phone:+8617000001111"]
    assert "c4" not in [c.event_id for c in state.calls]


def test_ordinary_call_with_a_known_number_is_no_fact() -> None:
    state = new_state("S1")
    friend = "+8613700000001"
    plain = [PersonEvent(person="S1", source="signals.telecom", telecom=TelecomSignal(
        event_id=f"f{i}", ts=T0 + (i * HOUR_MS if i else -100 * HOUR_MS), kind="call", direction="out",
        subscriber="+8613800138000", counterpart=friend, duration_s=60)) for i in range(4)]
    for ev in plain:
        apply_event(state, ev, POLICY)
    assert state.calls == []  # its first contact is beyond the window, and the calls since are ordinary
    first = T0 - 100 * HOUR_MS
    assert state.known[known_key(f"phone:{friend}")] == [first, (T0 + 3 * HOUR_MS) // DAY_MS * DAY_MS]


def test_a_hit_counts_from_when_it_is_known_until_its_end() -> None:
    state = new_state("S1")
    apply_event(state, hit(0, 30, end_h=40), POLICY)
    h, = state.hits
    assert h.end_ts == T0 + 40 * HOUR_MS
    at = [hit_live(h, T0 + int(t * HOUR_MS)) for t in (29.9, 30, 39.9, 40, 50)]
    assert at == [False, True, True, False, False]
    # a state stored before hits had an end still decodes: its hits are open
    old_hit = [T0, T0, "phone:+8617000001111", "romance", 0.8, "reverse", T0, "case", 0, "c0"]  # ten fields
    old = decode_state(msgspec.msgpack.encode({"person": "S1", "hits": [old_hit]}))
    assert old.hits[0].end_ts is None and hit_live(old.hits[0], T0 + 100 * HOUR_MS)


def test_a_retraction_notice_ends_the_hits_of_its_span_and_nothing_else() -> None:
    state = new_state("S1")
    apply_event(state, hit(0, 30, "c0"), POLICY)
    apply_event(state, hit(31, 30, "c1", mode="forward"), POLICY)
    apply_event(state, hit(31, 31, "c1", mode="fanout"), POLICY)  # a fan-out note on the same number
    apply_event(state, hit(2, 30, "c2", value_key="phone:+8617000002222"), POLICY)  # another value
    apply_event(state, hit(1, 20, "c3", end_h=25), POLICY)  # an earlier span of the value, ended before
    up = apply_event(state, retraction(30, 32), POLICY)
    assert up.noted and up.changed and up.triggers == [] and up.contacts == []
    ends = {(h.event_id, h.mode, h.indicator_ts): h.end_ts for h in state.hits}
    assert ends == {("c0", "reverse", T0 + 30 * HOUR_MS): T0 + 32 * HOUR_MS,
                    ("c1", "forward", T0 + 30 * HOUR_MS): T0 + 32 * HOUR_MS,
                    ("c1", "fanout", T0 + 31 * HOUR_MS): None,
                    ("c2", "reverse", T0 + 30 * HOUR_MS): None,
                    ("c3", "reverse", T0 + 20 * HOUR_MS): T0 + 25 * HOUR_MS}


def test_a_hit_on_its_way_when_the_retraction_was_read_is_voided() -> None:
    """A contact at 33 h, matched before the retraction at 32 h was read: its hit arrives first, the notice
    right after it (one producer's order), and it never counts."""
    state = new_state("S1")
    apply_event(state, hit(33, 30, "c9", mode="forward"), POLICY)
    apply_event(state, retraction(30, 32), POLICY)
    h, = state.hits
    assert not any(hit_live(h, T0 + t * HOUR_MS) for t in range(30, 110))


def test_a_redelivered_notice_changes_nothing_and_is_not_noted() -> None:
    state = new_state("S1")
    apply_event(state, hit(0, 30), POLICY)
    assert apply_event(state, retraction(30, 32), POLICY).noted and state.hits[0].end_ts == T0 + 32 * HOUR_MS
    snapshot = msgspec.msgpack.encode(state)
    for again in (retraction(30, 32), retraction(30, 33, ts_h=32)):  # the same one; a later end than it has
        up = apply_event(state, again, POLICY)
        assert not (up.changed or up.noted) and up.triggers == [] and up.contacts == []
        assert msgspec.msgpack.encode(state) == snapshot


def _transfer(ts_h: float, n: int, payer: str, payee: str, role: str, first: bool | None = None) -> PersonEvent:
    rec = PaymentSignal(event_id=f"p{n}", ts=T0 + int(ts_h * HOUR_MS), transfer_id=f"t{n}", status="initiated",
                        payer_account=payer, payee_account=payee, payee_bank="B", amount_fen=100_00,
                        channel="mobile", payee_first_seen=first)
    return PersonEvent(person="S1", source="signals.payment", role=role, payment=rec)


def _folded(*events: PersonEvent) -> PersonState:
    state = new_state("S1")
    for ev in events:
        apply_event(state, ev, POLICY)
    return state


def test_a_transfer_back_from_an_account_paid_before_is_no_first_contact_whatever_the_arrival() -> None:
    """The person pays X, then X pays the person (a rebate): the incoming transfer is no first contact, also when
    it arrives first (the outgoing one came through another source partition, or was read again after a crash)."""
    out_, in_ = _transfer(1, 1, "A1", "X", "self"), _transfer(2, 2, "X", "A1", "payee")
    in_order, reversed_order = _folded(out_, in_), _folded(in_, out_)
    assert [(f.direction, f.first_contact) for f in in_order.payments] == [("out", True), ("in", False)]
    assert msgspec.json.encode(in_order) == msgspec.json.encode(reversed_order)


def test_the_banks_first_seen_flag_is_never_demoted() -> None:
    """The bank says X is a new payee for the person; an incoming transfer from X earlier in event time, arriving
    late, leaves the bank's word standing, as it would have arriving first."""
    in_, out_ = _transfer(1, 1, "X", "A1", "payee"), _transfer(2, 2, "A1", "X", "self", first=True)
    in_order, reversed_order = _folded(in_, out_), _folded(out_, in_)
    assert [(f.direction, f.first_contact) for f in in_order.payments] == [("in", True), ("out", True)]
    assert msgspec.json.encode(in_order) == msgspec.json.encode(reversed_order)


def test_facts_of_one_moment_are_kept_in_one_order_whatever_the_arrival() -> None:
    """Two calls of the same millisecond: the state lists them by id, so what a decision cites does not depend on
    which came first."""
    a, b = call(1, "+8617000001111", n=1), call(1, "+8617000002222", n=2)
    assert [f.event_id for f in _folded(b, a).calls] == ["c1", "c2"]
    assert _folded(a, b).calls == _folded(b, a).calls
