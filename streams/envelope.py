"""The messages of `yujing.events` and `yujing.contacts`: one batch of records for one partition, marks at its end.

A worker sends, per batch it reads, at most one envelope to each partition it writes to: the records for that
partition in the order they were made, each with the Kafka time of the input it descends from, then the marks
of the channels it owns (punctuation: they cover every record before them on the partition, this envelope's
included). So the per-message cost of Kafka is paid per batch, and marks need no stream of their own.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import msgspec
from msgspec import Struct

from schemas.internal import PersonEvent, ValueMessage
from streams.watermarks import Mark

MAX_ITEMS = 500  # per envelope: a Kafka message stays far below the broker's 1 MB default


class EventBatch(Struct, array_like=True):
    """`yujing.events`: person events for one partition, their origins (Kafka time, s), then marks."""

    events: list[PersonEvent]
    origins: list[float | None]
    marks: list[Mark] = []


class ContactBatch(Struct, array_like=True):
    """`yujing.contacts`: contacts and indicator changes for one partition, their origins, then marks."""

    messages: list[ValueMessage]
    origins: list[float | None]
    marks: list[Mark] = []


Envelope = EventBatch | ContactBatch
_encoder = msgspec.msgpack.Encoder()
_decoders = {"yujing.events": msgspec.msgpack.Decoder(EventBatch),
             "yujing.contacts": msgspec.msgpack.Decoder(ContactBatch)}


def encode_envelope(envelope: Envelope) -> bytes:
    """An envelope's Kafka message value."""
    return _encoder.encode(envelope)


def decode_envelope(logical: str, value: bytes) -> Envelope:
    """An envelope of `yujing.events` or `yujing.contacts` (raises msgspec.DecodeError on anything else)."""
    return _decoders[logical].decode(value)


def envelopes(logical: str, records: list[PersonEvent] | list[ValueMessage], origins: list[float | None],
              marks: list[Mark]) -> Iterator[Envelope]:
    """The envelopes that carry these records (at most `MAX_ITEMS` each), the marks in the last one."""
    count = len(records)
    for start in range(0, max(count, 1), MAX_ITEMS):
        last = start + MAX_ITEMS >= count
        chunk, times = records[start:start + MAX_ITEMS], origins[start:start + MAX_ITEMS]
        if logical == "yujing.events":
            yield EventBatch(chunk, times, marks if last else [])  # type: ignore[arg-type]
        else:
            yield ContactBatch(chunk, times, marks if last else [])  # type: ignore[arg-type]


def items(envelope: Envelope) -> list[PersonEvent] | list[ValueMessage]:
    """The records an envelope carries."""
    return envelope.events if isinstance(envelope, EventBatch) else envelope.messages


class Unpacked(NamedTuple):
    """One record of an envelope as a reader of the topic sees it: where the envelope was, the record's key,
    its origin (Kafka time, ms) and the record as JSON (as the other topics carry theirs)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes
    value: bytes


def unpack(logical: str, messages: Iterable[Any]) -> list[Unpacked]:
    """The records of the envelopes among Kafka messages of `yujing.events` or `yujing.contacts`, in order."""
    out: list[Unpacked] = []
    for m in messages:
        try:
            envelope = decode_envelope(logical, m.value)
        except (msgspec.DecodeError, TypeError):
            continue  # not an envelope: dead-lettered by the reader
        for record, origin in zip(items(envelope), envelope.origins):
            key = record.person if isinstance(record, PersonEvent) else record.value_key
            out.append(Unpacked(m.topic, m.partition, m.offset, int(origin * 1000) if origin else None,
                                key.encode(), msgspec.json.encode(record)))
    return out
