"""The streaming core on the real broker: reverse mining, retraction, identity, multi-card control, restarts."""
from __future__ import annotations

import signal
from pathlib import Path

import msgspec

from deploy.config import Settings
from deploy.kafka_io import consume, end_offsets, produce, read_table
from deploy.workers import WorkerProcess
from schemas.internal import Decision, Trigger
from streams.person_state import PersonState, decode_state
from schemas.records import AccountInterception
from tests.integration.harness import isolated_settings
from tests.integration.scenario import (
    FRAUD, HOUR, T, background, call, dns, indicator, load_registry, nothing_waits, person_state, value_state, wait_for,
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

    # Both of Alice's lines landed in one state, with the hit.
    alice = person_state(isolated, "S_ALICE")
    assert alice is not None
    assert [c.event_id for c in alice.calls] == ["alice-call"] and [w.event_id for w in alice.web] == ["alice-dns"]
    assert [(h.mode, h.contact_ts) for h in alice.hits] == [("reverse", T - 30 * HOUR)]

    # Multi-card control: one card in a case puts all three of Dan's accounts, across banks, under control.
    controls = [msgspec.json.decode(m.value, type=AccountInterception)
                for m in consume(isolated, "interception.account", expect=3)]
    assert sorted(c.account for c in controls) == ["6217000000000042", "6222000000000041", "6228000000000043"]
    assert {c.subject_id for c in controls} == {"S_DAN"}
    assert person_state(isolated, "S_DAN").controlled_by == "case-2025-002"  # type: ignore[union-attr]

    # Retraction: once applied, a later contact with the number triggers nobody.
    produce(isolated, "intel.indicators", [indicator("phone", FRAUD, "retract", T + 1 * HOUR)])
    wait_for(lambda: (v := value_state(isolated, f"phone:{FRAUD}")) and v[0].span and v[0].span.end_ts, 60,
             "the retraction")
    before = end_offsets(isolated, "yujing.triggers")
    produce(isolated, "signals.telecom", [call("carol-call", "+8613800000003", FRAUD, T + 2 * HOUR)])
    wait_for(lambda: person_state(isolated, "S_CAROL"), 60, "Carol's call to be processed")
    assert triggers(isolated, expect=0, linger=3, start=before) == []
    assert consume(isolated, "deadletter", expect=0, linger=1) == []


def _feed(settings: Settings, part: int) -> None:
    """The input of the restart test, in two parts."""
    if part == 1:
        produce(settings, "signals.telecom", background(200) + [
            call("alice-1", "+8613800000001", FRAUD, T - 20 * HOUR),
            call("carol-1", "+8613800000003", FRAUD, T - 10 * HOUR)])
        produce(settings, "signals.domain", [dns("alice-dns", "+8613800000011", "fake-police.cn", T - 19 * HOUR)])
    else:
        produce(settings, "intel.indicators", [indicator("phone", FRAUD, "add", T),
                                               indicator("domain", "fake-police.cn", "add", T + HOUR)])
        produce(settings, "signals.telecom", background(100, T - 9 * HOUR, T + HOUR, first=200) + [
            call("bob-1", "+8613800000002", FRAUD, T + 2 * HOUR)])


def _outcome(settings: Settings) -> tuple[set[str], dict[bytes, PersonState], set[str]]:
    """Trigger ids, person states (without `risk.decided`) and decision ids of a run.

    `risk.decided` remembers which event made each decision, to re-send it on a redelivery; when two pieces of
    evidence arrive from different partitions, either may come first and decide, under the same decision id.
    So the states must be equal but for that bookkeeping, and the decision ids must be equal.
    """
    trigger_ids = {t.trigger_id for t in triggers(settings, expect=4, linger=3)}
    persons = {}
    for key, raw in read_table(settings, "persons").items():
        state = decode_state(raw)
        if state.risk is not None:
            state.risk.decided = []
        persons[key] = state
    decisions = {msgspec.json.decode(m.value, type=Decision).decision_id
                 for m in consume(settings, "yujing.decisions", expect=1, timeout=10, linger=2)}
    return trigger_ids, persons, decisions


def _settled(settings: Settings) -> bool:
    """The last event is in (Bob's forward hit) and every decision has been taken."""
    bob = person_state(settings, "S_BOB")
    return bool(bob and bob.hits) and nothing_waits(settings)


def test_worker_killed_mid_stream_recovers_and_matches_an_uninterrupted_run(stack: Settings, tmp_path: Path,
                                                                             small_model: Path) -> None:
    # The reference: one worker, never interrupted.
    ref = isolated_settings(stack, tmp_path / "ref", small_model)
    ref_worker = WorkerProcess(ref, tmp_path / "ref.log").start()
    try:
        load_registry(ref)
        _feed(ref, 1)
        _feed(ref, 2)
        wait_for(lambda: _settled(ref), 90, "the reference run")
        ref_triggers, ref_persons, ref_decisions = _outcome(ref)
    finally:
        ref_worker.stop()

    # The same input, with the worker killed (SIGKILL) after the first part and started again.
    run = isolated_settings(stack, tmp_path / "run", small_model)
    worker = WorkerProcess(run, tmp_path / "run.log").start()
    try:
        load_registry(run)
        _feed(run, 1)
        wait_for(lambda: person_state(run, "S_CAROL"), 60, "the first part")
        worker.stop(sig=signal.SIGKILL)
        worker.start()
        _feed(run, 2)
        wait_for(lambda: _settled(run), 120, "the run after the restart")
        run_triggers, run_persons, run_decisions = _outcome(run)
    finally:
        worker.stop()

    assert len(ref_triggers) == 4  # Alice (number, domain), Carol (number), Bob (number, forward)
    assert run_triggers == ref_triggers
    assert run_persons.keys() == ref_persons.keys()
    different = {k: [f for f in PersonState.__struct_fields__ if getattr(run_persons[k], f) != getattr(ref_persons[k], f)]
                 for k in ref_persons if run_persons[k] != ref_persons[k]}
    assert different == {}, f"person states differ (key: fields): {different}"
    assert run_decisions == ref_decisions and ref_decisions
