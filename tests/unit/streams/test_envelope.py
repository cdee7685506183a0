"""Envelopes of yujing.events and yujing.contacts: records in order, their origins, the marks after them."""
from __future__ import annotations

import msgspec
import pytest

from schemas.internal import Contact, PersonEvent, ValueMessage
from streams.envelope import (
    MAX_ITEMS,
    EventBatch,
    decode_envelope,
    encode_envelope,
    envelopes,
    items,
    unpack,
)
from streams.watermarks import Mark


class Message:
    def __init__(self, value: bytes, offset: int) -> None:
        self.topic, self.partition, self.offset, self.value = "t", 1, offset, value


def test_records_split_into_envelopes_with_the_marks_only_in_the_last() -> None:
    events = [PersonEvent(person=f"P{i}", source="hit") for i in range(MAX_ITEMS + 3)]
    origins = [float(i) for i in range(len(events))]
    marks = [Mark("signals.telecom/0", 10, False)]
    out = list(envelopes("yujing.events", events, origins, marks))
    assert [len(items(e)) for e in out] == [MAX_ITEMS, 3]
    assert [e.marks for e in out] == [[], marks]
    again = [decode_envelope("yujing.events", encode_envelope(e)) for e in out]
    assert [pe for e in again for pe in items(e)] == events and again[1].origins == origins[MAX_ITEMS:]


def test_marks_alone_make_one_empty_envelope() -> None:
    marks = [Mark("yujing.events/2", 5, True)]
    assert list(envelopes("yujing.contacts", [], [], marks)) == [
        decode_envelope("yujing.contacts", encode_envelope(envelopes("yujing.contacts", [], [], marks).__next__()))]
    (only,) = envelopes("yujing.contacts", [], [], marks)
    assert items(only) == [] and only.marks == marks


def test_unpack_gives_each_record_as_json_keyed_as_before_and_skips_what_is_not_an_envelope() -> None:
    contact = ValueMessage(value_key="phone:+861", contact=Contact(value_key="phone:+861", person="P", ts=3,
                                                                   event_id="e"))
    batch = encode_envelope(envelopes("yujing.contacts", [contact], [1.5], []).__next__())
    records = unpack("yujing.contacts", [Message(batch, 7), Message(b"{}", 8)])
    assert [(r.offset, r.key, r.timestamp) for r in records] == [(7, b"phone:+861", 1500)]
    assert msgspec.json.decode(records[0].value, type=ValueMessage) == contact


def test_an_envelope_of_the_other_topic_is_refused() -> None:
    raw = encode_envelope(EventBatch([PersonEvent(person="P", source="hit")], [None], []))
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_envelope("yujing.contacts", raw)
