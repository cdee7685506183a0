"""Hostile input through the real decode path: 10,000 generated records, malformed and adversarial, each either
dead-lettered with a reason (and its bytes kept) or processed into person events that fold without error."""
from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.deadletter import original_value
from schemas.records import DomainSignal, PaymentSignal, TelecomSignal
from streams.ingest import RawMessage, ingest
from streams.local import LocalPipeline
from tests.strategies import records

KAFKA_TS = 1_764_547_200_000
TYPES = {"signals.telecom": TelecomSignal, "signals.payment": PaymentSignal, "signals.domain": DomainSignal}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
HOMOGRAPHS = ["https://аpple.com/refund", "http://xn--pple-43d.com", "https://gov.cn.аpp.top/login",
              "javascript:alert(document.cookie)", "JAVASCRIPT:fetch('//evil')", "data:text/html,<script>",
              "http://[::1]:80/", "http://%00/", "https://ｅｘａｍｐｌｅ.com", "http://a" + "b" * 300 + ".cn"]
SEEN = {"dead": 0, "processed": 0}


# Lines and accounts as providers send them, so that records bent in one place still get through the others.
REALISTIC = {"subscriber": st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True),
             "payer_phone": st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True),
             "payer_account": st.from_regex(r"62[0-9]{14,17}", fullmatch=True),
             "payee_account": st.from_regex(r"62[0-9]{14,17}", fullmatch=True)}


def _valid(topic: str) -> st.SearchStrategy[dict[str, Any]]:
    def realistic(doc: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({k: v for k, v in REALISTIC.items() if k in doc}).map(
            lambda fields: {**doc, **fields, "ts": KAFKA_TS - 60_000})
    return records(TYPES[topic]).map(msgspec.to_builtins).flatmap(realistic)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    """One message for a signal topic: a valid record bent in one or two ways, or bytes that are not JSON."""
    topic = draw(st.sampled_from(sorted(TYPES)))
    doc = draw(_valid(topic))
    for _ in range(draw(st.integers(1, 2))):
        field = draw(st.sampled_from(sorted(doc)))
        how = draw(st.sampled_from(["json", "delete", "string", "negative", "time", "huge", "url", "deep",
                                    "utf8", "binary"]))
        if how == "json":
            doc[field] = draw(JSON)
        elif how == "delete":
            doc.pop(field, None)
        elif how == "string":  # numbers as strings
            doc[field] = str(doc.get(field))
        elif how == "negative":
            doc["amount_fen" if topic == "signals.payment" else "duration_s"] = -draw(st.integers(1, 10**15))
        elif how == "time":
            doc["ts"] = draw(st.sampled_from([0, -1, 10**17, 946_684_799_999, 4_102_444_800_000,
                                              KAFKA_TS + 3 * 86_400_000, "1764547200000", 1.5e12]))
        elif how == "huge":
            doc[field] = "x" * draw(st.sampled_from([300, 70_000, 2_000_000]))
        elif how == "url":
            doc["urls" if topic == "signals.telecom" else "domain"] = (
                draw(st.lists(st.sampled_from(HOMOGRAPHS), min_size=1, max_size=3)) if topic == "signals.telecom"
                else draw(st.sampled_from(HOMOGRAPHS)))
        elif how == "deep":
            depth = draw(st.sampled_from([50, 5_000, 100_000]))
            return topic, json.dumps({**doc, field: 0}).encode()[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
        elif how == "utf8":
            return topic, json.dumps(doc).encode()[:-2] + b'\xff\xfe"}'
        else:
            return topic, draw(st.binary(max_size=200))
    return topic, json.dumps(doc, ensure_ascii=False).encode()


pipeline = LocalPipeline()  # one pipeline for all examples: the state that hostile records build up must hold too


@settings(max_examples=10_000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(hostile())
def test_hostile_records_are_dead_lettered_with_a_reason_or_processed(message: tuple[str, bytes]) -> None:
    topic, raw = message
    result = ingest(RawMessage(topic, 0, 7, b"key", raw, KAFKA_TS), pipeline.processor.lookup)
    if result.dead is not None:
        SEEN["dead"] += 1
        assert result.dead.reason and len(result.dead.reason) <= 500
        assert original_value(result.dead) == raw  # the evidence, as received
        return
    SEEN["processed"] += 1
    assert result.events
    for pe in result.events:
        out = pipeline.processor.person_event(pe)  # the next stage must take whatever validation let through
        for o in out:
            key = getattr(o.value, "value_key", "")
            if key.startswith("domain:"):  # a domain is matched on its ASCII (punycode) form, never a script
                assert key.isascii() and "javascript" not in key.lower() and " " not in key, key


def test_the_fuzz_ran_ten_thousand_records_both_ways() -> None:
    assert SEEN["dead"] + SEEN["processed"] >= 10_000, SEEN
    assert SEEN["dead"] > 1_000 and SEEN["processed"] > 100, SEEN  # both paths were exercised
