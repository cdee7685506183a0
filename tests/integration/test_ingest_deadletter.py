"""Malformed records on every signal topic are dead-lettered one for one; valid ones beside them pass."""
from __future__ import annotations

import json

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.deadletter import original_value
from schemas.records import DeadLetter
from streams.kafka_io import consume, produce
from tests.unit.schemas.test_decode import CALL, DNS, PAY

MALFORMED = [
    b"not json at all",
    b"\xff\xfe\xfa invalid utf-8",
    None,
    b'{"event_id": "x"}',
]


def _wrong_types(doc: dict[str, object]) -> bytes:
    return json.dumps({**doc, "ts": str(doc["ts"])}).encode()


def _huge_field(doc: dict[str, object]) -> bytes:
    return json.dumps({**doc, "event_id": "e" * 100_000}).encode()


def test_bad_records_dead_lettered_and_good_ones_pass(isolated: Settings, worker: WorkerProcess) -> None:
    good = {"signals.telecom": CALL, "signals.payment": PAY, "signals.domain": DNS}
    sent_bad = 0
    for topic, doc in good.items():
        bad = [*MALFORMED, _wrong_types(doc), _huge_field(doc)]
        valid = [json.dumps({**doc, "event_id": f"{topic}-{i}"}).encode() for i in range(3)]
        produce(isolated, topic, [(b"key", v) for v in bad + valid])
        sent_bad += len(bad)

    dead = [msgspec.json.decode(m.value, type=DeadLetter) for m in consume(isolated, "deadletter", sent_bad)]
    # 3 valid telecom + 3 valid domain events, and 3 valid transfers counted for payer and payee
    events = consume(isolated, "yujing.events", expect=12)
    assert len(dead) == sent_bad, worker.log_tail()
    assert len(events) == 12
    assert all(d.reason for d in dead)
    by_topic: dict[str, list[DeadLetter]] = {}
    for d in dead:
        by_topic.setdefault(d.topic, []).append(d)
    assert {t: len(v) for t, v in by_topic.items()} == {t: 6 for t in good}
    for d in by_topic["signals.telecom"]:
        assert d.value_encoding in ("utf-8", "base64")
    reasons = " | ".join(d.reason for d in dead)
    for words in ("not JSON", "not UTF-8", "null value", "missing required field", "Expected `int`, got `str`",
                  "exceeds the"):
        assert words in reasons
    assert b"\xff\xfe\xfa invalid utf-8" in {original_value(d) for d in dead}
    assert worker.running
