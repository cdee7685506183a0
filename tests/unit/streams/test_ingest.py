"""The pure ingest stage: valid signals become person events, anything else one dead letter with its bytes."""
from __future__ import annotations

import json

from schemas.deadletter import original_value
from streams.ingest import RawMessage, ingest
from tests.unit.schemas.test_decode import CALL, PAY


def _msg(topic: str, value: bytes | None) -> RawMessage:
    return RawMessage(topic=topic, partition=3, offset=42, key=b"k", value=value, kafka_ts=1)


def test_call_becomes_one_event_for_the_subscriber() -> None:
    result = ingest(_msg("signals.telecom", json.dumps(CALL).encode()))
    assert result.dead is None
    assert [(e.person, e.source, e.role) for e in result.events] == [("+8613800138000", "signals.telecom", "self")]


def test_transfer_counts_for_payer_and_payee() -> None:
    result = ingest(_msg("signals.payment", json.dumps(PAY).encode()))
    assert [(e.person, e.role) for e in result.events] == [("622200001111", "self"), ("62179999", "payee")]


def test_bad_message_becomes_a_dead_letter_with_its_origin() -> None:
    raw = b"\xff\x00 not utf8"
    result = ingest(_msg("signals.payment", raw))
    assert result.events == []
    dead = result.dead
    assert dead is not None
    assert (dead.topic, dead.partition, dead.offset, dead.value_encoding) == ("signals.payment", 3, 42, "base64")
    assert original_value(dead) == raw and "UTF-8" in dead.reason


def test_null_value_is_dead_lettered() -> None:
    result = ingest(_msg("signals.domain", None))
    assert result.dead is not None and "null" in result.dead.reason


def test_event_time_far_ahead_of_kafka_is_dead_lettered_and_a_little_ahead_is_not() -> None:
    received = CALL["ts"]  # when Kafka got the record
    ahead = {**CALL, "ts": received + 3 * 86_400_000}
    dead = ingest(RawMessage("signals.telecom", 0, 1, b"k", json.dumps(ahead).encode(), received)).dead
    assert dead is not None and dead.field == "ts" and "72 h ahead" in dead.reason
    skewed = {**CALL, "ts": received + 3_600_000}  # a provider's clock an hour fast: still a signal
    assert ingest(RawMessage("signals.telecom", 0, 2, b"k", json.dumps(skewed).encode(), received)).events
