"""The whole core in one process: the same scenario as the broker test, in milliseconds."""
from __future__ import annotations

import msgspec

from schemas.decode import INPUT_TYPES
from streams.local import LocalPipeline
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
