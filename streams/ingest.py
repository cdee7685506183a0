"""The ingest stage as a pure function: one raw message in, person events or one dead letter out."""
from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_input
from schemas.internal import PersonEvent
from schemas.records import (
    MIN_TS_MS,
    DeadLetter,
    DomainSignal,
    PaymentSignal,
    TelecomSignal,
)
from streams.identity import Lookup, resolve_account, resolve_line

MAX_AHEAD_MS = 24 * 3_600_000  # how far event time may run ahead of the Kafka timestamp (providers' clock skew)


def _unregistered(_: str) -> str | None:
    return None


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


def person_events(record: TelecomSignal | PaymentSignal | DomainSignal,
                  lookup: Lookup = _unregistered) -> list[PersonEvent]:
    """The person events of one valid signal: resolved to the registered person, else keyed by line or account."""
    if isinstance(record, TelecomSignal):
        person, subject = resolve_line(lookup, record.subscriber)
        return [PersonEvent(person=person, subject_id=subject, source="signals.telecom", telecom=record)]
    if isinstance(record, DomainSignal):
        person, subject = resolve_line(lookup, record.subscriber)
        return [PersonEvent(person=person, subject_id=subject, source="signals.domain", domain=record)]
    payer, payer_subject = resolve_account(lookup, record.payer_account, record.payer_phone)
    events = [PersonEvent(person=payer, subject_id=payer_subject, source="signals.payment", payment=record)]
    payee, payee_subject = resolve_account(lookup, record.payee_account)
    if payee != payer:
        events.append(PersonEvent(person=payee, subject_id=payee_subject, source="signals.payment", role="payee",
                                  payment=record))
    return events


def resolve_late(pe: PersonEvent, lookup: Lookup) -> PersonEvent | None:
    """An unregistered signal event whose line or account has been registered since ingest saw it: the same
    event for the person (None when it is still unregistered). Ingest can run ahead of the identity table (a
    registry record read by another worker, or just behind); the person stage looks again before keeping it."""
    if pe.subject_id is not None or pe.source not in ("signals.telecom", "signals.domain", "signals.payment"):
        return None
    if pe.telecom is not None:
        person, subject = resolve_line(lookup, pe.telecom.subscriber)
    elif pe.domain is not None:
        person, subject = resolve_line(lookup, pe.domain.subscriber)
    elif pe.payment is not None and pe.role == "payee":
        person, subject = resolve_account(lookup, pe.payment.payee_account)
    elif pe.payment is not None:
        person, subject = resolve_account(lookup, pe.payment.payer_account, pe.payment.payer_phone)
    else:
        return None
    if subject is None or person == pe.person:
        return None
    return msgspec.structs.replace(pe, person=person, subject_id=subject)


def refuse_far_ahead(ts: int, kafka_ts: int | None, field: str = "ts", latest_ms: int | None = None) -> None:
    """Refuse an event time more than a day ahead of when Kafka received the record, or past `latest_ms` (the wall
    clock plus the allowed skew) whatever Kafka's timestamp says (`InvalidRecord` on `field`)."""
    # A record cannot be sent before it happens. Let in, one far ahead would move a person's window, a
    # partition's time or the escalation clock past every real event after it (they would all count as too
    # old, late, or overdue). Kafka's timestamp alone is no bound: a producer may set it, to 0 or to the future.
    if latest_ms is not None and ts > latest_ms:
        raise InvalidRecord(f"event time is {(ts - latest_ms) / 60_000:.0f} min past the latest this worker "
                            "accepts (its wall clock plus YUJING_MAX_AHEAD_MINUTES): a clock or unit error", field)
    if kafka_ts is not None and kafka_ts >= MIN_TS_MS and ts > kafka_ts + MAX_AHEAD_MS:
        raise InvalidRecord(f"event time is {(ts - kafka_ts) / 3_600_000:.0f} h ahead of when Kafka received the "
                            "record (more than 24 h: a clock or unit error)", field)


def ingest(msg: RawMessage, lookup: Lookup = _unregistered, latest_ms: int | None = None) -> IngestResult:
    """Decode, validate and normalise one signal message; a bad one becomes a dead letter with its reason.
    `latest_ms` bounds event time (see `refuse_far_ahead`)."""
    try:
        record = decode_input(msg.topic, msg.value)
        assert isinstance(record, (TelecomSignal, PaymentSignal, DomainSignal))
        refuse_far_ahead(record.ts, msg.kafka_ts, latest_ms=latest_ms)
    except InvalidRecord as exc:
        return IngestResult(dead=dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                                             exc.reason, exc.field, msg.kafka_ts))
    return IngestResult(events=person_events(record, lookup))
