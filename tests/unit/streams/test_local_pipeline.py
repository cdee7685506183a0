"""The whole core in one process: the same scenario as the broker test, in milliseconds."""
from __future__ import annotations

import msgspec

from schemas.decode import INPUT_TYPES
from schemas.internal import PersonEvent
from streams.local import LocalPipeline
from streams.watermarks import PendingEntry
from tests.integration.scenario import (
    FRAUD,
    HOUR,
    SUBJECTS,
    T,
    call,
    dns,
    indicator,
    subject_doc,
)


def feed(p: LocalPipeline, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    for _, raw in messages:
        p.feed(topic, msgspec.json.decode(raw, type=INPUT_TYPES[topic]))


def test_reverse_mining_and_control_in_process() -> None:
    p = LocalPipeline()
    feed(p, "registry.subjects", [(b"", subject_doc(s, i)) for i, s in enumerate(SUBJECTS)])
    feed(p, "signals.telecom", [call("alice-call", "+8613800000001", FRAUD, T - 30 * HOUR),
                                call("bob-call", "+8613800000002", FRAUD, T - 80 * HOUR)])
    feed(p, "signals.domain", [dns("alice-dns", "+8613800000011", "fake.cn", T - 29 * HOUR)])
    feed(p, "intel.indicators", [indicator("phone", FRAUD, "add", T),
                                 indicator("account", "6217000000000042", "add", T, "case-2")])
    triggers = [(o.value.person, o.value.mode) for o in p.sent["yujing.triggers"]]
    assert sorted(triggers) == [("S_ALICE", "reverse"), ("S_DAN", "control")]
    assert len(p.sent["interception.account"]) == 3
    alice = p.processor.persons[b"S_ALICE"]
    assert {c.event_id for c in alice.calls} == {"alice-call"} and {w.event_id for w in alice.web} == {"alice-dns"}


def test_a_registry_tombstone_erases_the_person_from_identity_state_waiting_decisions_and_index() -> None:
    """Alice and Bob both called the fraud number; Alice also looked up a site. Alice is erased: her lines, card
    and profile resolve no more, her state and the decisions waiting on her are gone, no value lists her, and an
    indicator now hits Bob alone. Bob is untouched."""
    p = LocalPipeline()
    feed(p, "registry.subjects", [(b"", subject_doc(s, i)) for i, s in enumerate(SUBJECTS)])
    feed(p, "signals.telecom", [call("alice-call", "+8613800000001", FRAUD, T - 30 * HOUR),
                                call("bob-call", "+8613800000002", FRAUD, T - 20 * HOUR)])
    feed(p, "signals.domain", [dns("alice-dns", "+8613800000011", "fake.cn", T - 29 * HOUR)])
    assert any(k.endswith(b"\x1fS_ALICE") for k in p.processor.values) and b"S_ALICE" in p.processor.persons
    for person in ("S_ALICE", "S_BOB"):  # a decision waiting on each (this pipeline has no scorer to make them)
        p.processor.waiting.add(0, T, PendingEntry(PersonEvent(person=person, source="signals.telecom")), "later")

    p.erase("S_ALICE")

    assert p.processor.lookup("phone:+8613800000001") is None and p.processor.lookup("phone:+8613800000011") is None
    assert p.processor.lookup("account:6222000000000001") is None and p.processor.lookup("subject:S_ALICE") is None
    assert p.processor.lookup("phone:+8613800000002") == "S_BOB"
    assert b"S_ALICE" not in p.processor.persons and b"S_BOB" in p.processor.persons
    assert [e.event.person for _, e in p.processor.waiting.due(0, 2**62)] == ["S_BOB"]
    assert not [k for k in p.processor.values if k.endswith(b"\x1fS_ALICE")]
    heads = {k: v for k, v in p.processor.values.items() if b"\x1f" not in k}
    assert heads and all("S_ALICE" not in h.people for h in heads.values())
    assert any("S_BOB" in h.people for h in heads.values())
    feed(p, "intel.indicators", [indicator("phone", FRAUD, "add", T)])
    assert {o.value.person for o in p.sent["yujing.triggers"]} == {"S_BOB"}
