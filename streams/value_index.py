"""The contact index of one value (number, account, domain, app) and its indicator: forward and reverse matching.

One value's contacts and indicator changes arrive in one ordered stream (key: value), so a single owner holds
both. Whether a contact matches an indicator is defined by event time alone:

    add_ts - lookback <= contact_ts < end_ts     (end_ts: retraction or expiry; open when neither)

so the set of hits does not depend on which of the two arrived first: a contact that arrives after the
indicator is matched on arrival (forward, or reverse when it happened before the add); an indicator that
arrives after the contacts finds them in the index (reverse mining, 反向挖掘).
"""
from __future__ import annotations

from dataclasses import dataclass

from msgspec import Struct

from schemas.internal import Contact, IndicatorHit
from schemas.records import Indicator

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class IndexPolicy:
    """Bounds of the index: how far back it reaches, how late events may be, how many people per value."""

    lookback_ms: int = 72 * HOUR_MS
    late_tolerance_ms: int = 1 * HOUR_MS
    max_people: int = 500  # beyond this a value is a mass campaign: counted, no longer listed
    fanout_window_ms: int = 1 * HOUR_MS
    fanout_threshold: int = 30  # distinct people called by one number within the window

    @property
    def retention_ms(self) -> int:
        """How long an entry stays: the lookback plus the tolerance for late indicators."""
        return self.lookback_ms + self.late_tolerance_ms


class Entry(Struct, array_like=True):
    """One person's contacts with the value: the first and the last, by event time, and how many."""

    person: str
    first_ts: int
    first_event_id: str
    last_ts: int
    last_event_id: str
    count: int


class Span(Struct, array_like=True, omit_defaults=True):
    """The indicator's active span in event time, and what it says."""

    add_ts: int
    fraud_type: str
    confidence: float
    source: str
    end_ts: int | None = None


class ValueState(Struct, array_like=True, omit_defaults=True):
    """Everything kept for one value: recent contacts by person, the indicator span, a saturation count."""

    watermark: int = 0  # the latest event time seen for this value
    entries: dict[str, Entry] = {}
    span: Span | None = None
    overflow: int = 0  # contacts not listed because the value reached max_people
    fanout_flagged: list[str] = []  # people already told about this number's fan-out


def _matches(span: Span | None, ts: int, policy: IndexPolicy) -> bool:
    if span is None:
        return False
    if ts < span.add_ts - policy.lookback_ms:
        return False
    return span.end_ts is None or ts < span.end_ts


def _hit(value_key: str, span: Span, contact_ts: int, event_id: str) -> IndicatorHit:
    return IndicatorHit(value_key=value_key, fraud_type=span.fraud_type, confidence=span.confidence,
                        source=span.source, indicator_ts=span.add_ts, contact_ts=contact_ts, event_id=event_id,
                        mode="forward" if contact_ts >= span.add_ts else "reverse")


def _prune(state: ValueState, policy: IndexPolicy) -> None:
    horizon = state.watermark - policy.retention_ms
    stale = [p for p, e in state.entries.items() if e.last_ts < horizon]
    for person in stale:
        del state.entries[person]
    if stale and state.fanout_flagged:
        state.fanout_flagged = [p for p in state.fanout_flagged if p in state.entries]


def fanout(state: ValueState, now_ts: int, policy: IndexPolicy) -> int:
    """Distinct people in contact with the value within the fan-out window before `now_ts`."""
    since = now_ts - policy.fanout_window_ms
    return sum(1 for e in state.entries.values() if since <= e.last_ts <= now_ts)


def add_contact(state: ValueState, contact: Contact, policy: IndexPolicy,
                track_fanout: bool = False) -> list[tuple[str, IndicatorHit]]:
    """Record a contact; returns (person, hit) pairs: the indicator match, and fan-out notes for numbers."""
    state.watermark = max(state.watermark, contact.ts)
    if contact.ts < state.watermark - policy.retention_ms:
        return []  # older than anything an indicator may still reach back to
    entry = state.entries.get(contact.person)
    if entry is None:
        if len(state.entries) >= policy.max_people:
            _prune(state, policy)
        if len(state.entries) >= policy.max_people:
            state.overflow += 1
        else:
            state.entries[contact.person] = Entry(contact.person, contact.ts, contact.event_id, contact.ts,
                                                  contact.event_id, 1)
    elif contact.event_id not in (entry.first_event_id, entry.last_event_id):  # a replay is not a new contact
        entry.count += 1
        if contact.ts < entry.first_ts:
            entry.first_ts, entry.first_event_id = contact.ts, contact.event_id
        if contact.ts >= entry.last_ts:
            entry.last_ts, entry.last_event_id = contact.ts, contact.event_id
    out: list[tuple[str, IndicatorHit]] = []
    if state.span is not None and _matches(state.span, contact.ts, policy):
        out.append((contact.person, _hit(contact.value_key, state.span, contact.ts, contact.event_id)))
    if track_fanout:
        out.extend(_fanout_notes(state, contact, policy))
    return out


def _fanout_notes(state: ValueState, contact: Contact, policy: IndexPolicy) -> list[tuple[str, IndicatorHit]]:
    """When a number reaches the fan-out threshold, everyone it reached in the window hears of it, once."""
    n = fanout(state, contact.ts, policy)
    if n < policy.fanout_threshold:
        return []
    since = contact.ts - policy.fanout_window_ms
    flagged = set(state.fanout_flagged)
    out = []
    for person, e in sorted(state.entries.items()):
        if person not in flagged and since <= e.last_ts <= contact.ts:
            flagged.add(person)
            out.append((person, IndicatorHit(value_key=contact.value_key, fraud_type="unknown", confidence=0.0,
                                             source="fanout", indicator_ts=contact.ts, contact_ts=e.last_ts,
                                             event_id=e.last_event_id, mode="fanout", fanout=n)))
    state.fanout_flagged = sorted(flagged)
    return out


def apply_indicator(state: ValueState, value_key: str, indicator: Indicator,
                    policy: IndexPolicy) -> list[tuple[str, IndicatorHit]]:
    """Add, retract or re-add the value's indicator; an add mines the index in reverse and returns the hits."""
    if indicator.action == "retract":
        if state.span is not None and (state.span.end_ts is None or indicator.ts < state.span.end_ts):
            state.span.end_ts = max(indicator.ts, state.span.add_ts)
        return []
    state.span = Span(add_ts=indicator.ts, fraud_type=indicator.fraud_type, confidence=indicator.confidence,
                      source=indicator.source, end_ts=indicator.expires_ts)
    hits = []
    for person, entry in sorted(state.entries.items()):
        # The latest contact decides, unless it falls after the span's end while the first was inside.
        ts, event_id = entry.last_ts, entry.last_event_id
        if not _matches(state.span, ts, policy) and _matches(state.span, entry.first_ts, policy):
            ts, event_id = entry.first_ts, entry.first_event_id
        if _matches(state.span, ts, policy):
            hits.append((person, _hit(value_key, state.span, ts, event_id)))
    return hits
