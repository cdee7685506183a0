"""The streaming core on the real broker: reverse mining, retraction, identity, multi-card control.

Workers killed and restarted: tests/integration/test_faults.py."""
from __future__ import annotations

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import Trigger
from schemas.records import AccountInterception
from streams.kafka_io import consume, end_offsets, produce
from tests.integration.scenario import (
    FRAUD,
    HOUR,
    T,
    background,
    call,
    dns,
    indicator,
    load_registry,
    person_state,
    value_state,
    wait_for,
)


def triggers(settings: Settings, expect: int, linger: float = 4.0, start: dict[int, int] | None = None) -> list[Trigger]:
    msgs = consume(settings, "yujing.triggers", expect, timeout=60, linger=linger, start=start)
    return [msgspec.json.decode(m.value, type=Trigger) for m in msgs]


def test_reverse_mining_retraction_identity_and_multicard_control(isolated: Settings,
                                                                  worker: WorkerProcess) -> None:
    load_registry(isolated)
    produce(isolated, "signals.telecom", background(60) + [
        call("alice-call", "+8613800000001", "+86 170 0000 1111", T - 30 * HOUR),  # 30 h before: found
        call("bob-call", "+8613800000002", "0086-17000001111", T - 80 * HOUR),  # 80 h before: too old
    ])
    produce(isolated, "signals.domain", [dns("alice-dns", "+8613800000011", "Fake-Police.cn.", T - 29 * HOUR)])
    # Wait until the contacts are indexed, so that the indicator really mines backwards.
    wait_for(lambda: (v := value_state(isolated, f"phone:{FRAUD}")) and len(v[1]) == 2, 60, "the index")
    produce(isolated, "intel.indicators", [indicator("phone", "+86-170-0000-1111", "add", T),
                                           indicator("account", "6217 0000 0000 0042", "add", T, "case-2025-002")])

    got = triggers(isolated, expect=2)
    assert sorted((t.person, t.cause, t.mode, t.event_id) for t in got) == [
        ("S_ALICE", "indicator_hit", "reverse", "alice-call"),
        ("S_DAN", "control", "control", "case-2025-002"),
    ], worker.log_tail()
    alice_hit = next(t for t in got if t.person == "S_ALICE")
    assert alice_hit.value_key == f"phone:{FRAUD}" and alice_hit.ts == T

    # Both of Alice's lines landed in one state, with the hit (the table has it from the next checkpoint on).
    alice = wait_for(lambda: (a := person_state(isolated, "S_ALICE")) and a.hits and a, 60, "Alice's hit in her state")
    assert [c.event_id for c in alice.calls] == ["alice-call"] and [w.event_id for w in alice.web] == ["alice-dns"]
    assert [(h.mode, h.contact_ts) for h in alice.hits] == [("reverse", T - 30 * HOUR)]

    # Multi-card control: one card in a case puts all three of Dan's accounts, across banks, under control.
    controls = [msgspec.json.decode(m.value, type=AccountInterception)
                for m in consume(isolated, "interception.account", expect=3)]
    assert sorted(c.account for c in controls) == ["6217000000000042", "6222000000000041", "6228000000000043"]
    assert {c.subject_id for c in controls} == {"S_DAN"}
    wait_for(lambda: (d := person_state(isolated, "S_DAN")) and d.controlled_by == "case-2025-002", 60,
             "Dan's state under control")

    # Retraction: once applied, a later contact with the number triggers nobody.
    produce(isolated, "intel.indicators", [indicator("phone", FRAUD, "retract", T + 1 * HOUR)])
    wait_for(lambda: (v := value_state(isolated, f"phone:{FRAUD}")) and v[0].span and v[0].span.end_ts, 60,
             "the retraction")
    # Alice, listed under the number, is told: her hit counts no more from the retraction on.
    wait_for(lambda: [h.end_ts for h in person_state(isolated, "S_ALICE").hits] == [T + HOUR], 60,  # type: ignore[union-attr]
             "Alice's hit to end at the retraction")
    before = end_offsets(isolated, "yujing.triggers")
    produce(isolated, "signals.telecom", [call("carol-call", "+8613800000003", FRAUD, T + 2 * HOUR)])
    wait_for(lambda: person_state(isolated, "S_CAROL"), 60, "Carol's call to be processed")
    assert triggers(isolated, expect=0, linger=3, start=before) == []
    assert consume(isolated, "deadletter", expect=0, linger=1) == []
