"""The ingest stage as a pure function: one raw message in, person events or one dead letter out."""
from __future__ import annotations

from dataclasses import dataclass, field

from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_input
from schemas.internal import PersonEvent
from schemas.records import DeadLetter, DomainSignal, PaymentSignal, TelecomSignal


@dataclass(frozen=True)
class RawMessage:
    """A Kafka message as the ingest stage sees it: where it came from and its bytes."""

    topic: str  # the logical contract topic
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kafka_ts: int | None = None


@dataclass
class IngestResult:
    """What one message turned into: person events to forward, or the dead letter that replaces it."""

    events: list[PersonEvent] = field(default_factory=list)
    dead: DeadLetter | None = None


def person_events(record: TelecomSignal | PaymentSignal | DomainSignal) -> list[PersonEvent]:
    """The person events of one valid signal, keyed by line or account (identity resolution comes later)."""
    if isinstance(record, TelecomSignal):
        return [PersonEvent(person=record.subscriber, source="signals.telecom", telecom=record)]
    if isinstance(record, DomainSignal):
        return [PersonEvent(person=record.subscriber, source="signals.domain", domain=record)]
    events = [PersonEvent(person=record.payer_account, source="signals.payment", payment=record)]
    if record.payee_account != record.payer_account:
        events.append(PersonEvent(person=record.payee_account, source="signals.payment", role="payee",
                                  payment=record))
    return events


def ingest(msg: RawMessage) -> IngestResult:
    """Decode, validate and normalise one signal message; a bad one becomes a dead letter with its reason."""
    try:
        record = decode_input(msg.topic, msg.value)
    except InvalidRecord as exc:
        return IngestResult(dead=dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                                             exc.reason, exc.field, msg.kafka_ts))
    assert isinstance(record, (TelecomSignal, PaymentSignal, DomainSignal))
    return IngestResult(events=person_events(record))
