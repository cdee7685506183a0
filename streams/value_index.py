"""The contact index of one value (number, account, domain, app) and its indicator: forward and reverse matching.

One value's contacts and indicator changes arrive in one ordered stream (key: value), so a single owner holds
both. Whether a contact matches an indicator is defined by event time alone:

    add_ts - lookback <= contact_ts < end_ts     (end_ts: retraction or expiry; open when neither)

so the set of hits does not depend on which of the two arrived first: a contact that arrives after the
indicator is matched on arrival (forward, or reverse when it happened before the add); an indicator that
arrives after the contacts finds them in the index (reverse mining, 反向挖掘).

A hit carries its span's end when it is known (expiry). An end learnt later, or moved earlier (a retraction,
or a re-add that shortens the span), goes to everyone listed under the value as a retraction notice: the hits
they hold from that span stop counting at the end, those still on their way to them included (why that holds:
streams/watermarks.py). People a span hit in reverse stay listed while that hit may count.

Storage: a small `ValueHead` (span, watermark, the people listed) and one small `Entry` per (value, person) with
the person's contacts (the first and the latest, `MAX_CONTACTS` in all). Heads are kept as objects (one may list
hundreds of people: decoding it per contact cost more than the matching), entries encoded (about a hundred per
person, each 5× the memory as an object). A contact changes only the person's
entry, and the head only when someone new is listed or the hour moves on; the changelog gets each changed key
once per checkpoint. A value that reached `max_people` (a mass campaign, or a popular site) lists no newcomers:
the overflow goes to metrics.
"""
from __future__ import annotations

import bisect
from collections.abc import MutableMapping
from dataclasses import dataclass, field

import msgspec
from msgspec import Struct

from schemas.internal import Contact, IndicatorHit, RetractionNote
from schemas.records import Indicator
from schemas.units import HOUR_MS

# Contacts kept per person and value. Up to this many, reverse mining hits what forward matching would have (each
# contact within the span), so the hits do not depend on whether the contacts or the indicator came first.
MAX_CONTACTS = 16


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
    """One person's contacts with the value, by event time: the first, then the latest (`MAX_CONTACTS` in all)."""

    contacts: list[tuple[int, str]]  # (ts, event id)

    @property
    def first_ts(self) -> int:
        return self.contacts[0][0]

    @property
    def last_ts(self) -> int:
        return self.contacts[-1][0]

    @property
    def last_event_id(self) -> str:
        return self.contacts[-1][1]


class Span(Struct, array_like=True, omit_defaults=True):
    """The indicator's active span in event time, and what it says."""

    add_ts: int
    fraud_type: str
    confidence: float
    source: str
    end_ts: int | None = None


class ValueHead(Struct, array_like=True, omit_defaults=True):
    """What is kept for one value besides the entries: the latest hour seen, the people listed, the indicator."""

    watermark: int = 0
    people: list[str] = []
    span: Span | None = None
    pruned: int = 0  # event time of the last garbage collection of stale entries
    newcomers: list[tuple[int, str]] = []  # (ts, person) reached for the first time, within the fan-out window
    fanout_flagged: list[str] = []  # people already told about this number's fan-out


Entries = MutableMapping[str, Entry]  # person -> entry; a dict in tests, a table view in the agent


@dataclass
class IndexUpdate:
    """What one contact or indicator change produced."""

    hits: list[tuple[str, IndicatorHit]] = field(default_factory=list)
    notices: list[tuple[str, RetractionNote]] = field(default_factory=list)  # sent after the hits
    head_changed: bool = False  # the head must be written back (entries write themselves through the mapping)
    overflow: bool = False  # a newcomer was not listed: the value is saturated


_head_decoder = msgspec.msgpack.Decoder(ValueHead)
_entry_decoder = msgspec.msgpack.Decoder(Entry)
# Before entries kept their contacts: [first_ts, first_event_id, last_ts, last_event_id] (read back, not written).
_first_and_last = msgspec.msgpack.Decoder(tuple[int, str, int, str])


def encode_head(head: ValueHead) -> bytes:
    """A head as stored in the `values` table."""
    return msgspec.msgpack.encode(head)


def decode_head(raw: bytes) -> ValueHead:
    """A head read back from the `values` table."""
    return _head_decoder.decode(raw)


def encode_entry(entry: Entry) -> bytes:
    """An entry as stored in the `values` table."""
    return msgspec.msgpack.encode(entry)


def decode_entry(raw: bytes) -> Entry:
    """An entry read back from the `values` table (also one stored before entries kept every contact)."""
    try:
        return _entry_decoder.decode(raw)
    except msgspec.ValidationError:
        first_ts, first_id, last_ts, last_id = _first_and_last.decode(raw)
        return Entry(sorted({(first_ts, first_id), (last_ts, last_id)}))


def stored_head(stored: ValueHead | bytes | None) -> ValueHead:
    """A value's head as the `values` table holds it: the object the stages wrote, or bytes read back from the
    changelog (decoded on each read until the head is written again); a new head when there is none."""
    if stored is None:
        return ValueHead()
    return stored if isinstance(stored, ValueHead) else decode_head(stored)


def encode_stored(value: ValueHead | bytes) -> bytes:
    """A head (or an entry, kept encoded) for the changelog; bytes read back and never written since go as they
    came."""
    return value if isinstance(value, bytes) else msgspec.msgpack.encode(value)


ENTRY_SEPARATOR = "\x1f"  # between the value and the person in an entry's key


def entry_key(value_key: str, person: str) -> str:
    """The table key of one person's entry under a value (same partition as the value: written by its owner)."""
    return f"{value_key}{ENTRY_SEPARATOR}{person}"


def _matches(span: Span | None, ts: int, policy: IndexPolicy) -> bool:
    if span is None:
        return False
    if ts < span.add_ts - policy.lookback_ms:
        return False
    return span.end_ts is None or ts < span.end_ts


def _hit(value_key: str, span: Span, contact_ts: int, event_id: str) -> IndicatorHit:
    return IndicatorHit(value_key=value_key, fraud_type=span.fraud_type, confidence=span.confidence,
                        source=span.source, indicator_ts=span.add_ts, contact_ts=contact_ts, event_id=event_id,
                        mode="forward" if contact_ts >= span.add_ts else "reverse", end_ts=span.end_ts)


def _holds_reverse_hit(span: Span | None, entry: Entry, horizon: int, policy: IndexPolicy) -> bool:
    """Whether the person may hold a reverse hit of the span (at its add) that is still within retention."""
    if span is None or span.add_ts < horizon:
        return False
    reached = entry.last_ts >= span.add_ts - policy.lookback_ms
    return reached and (span.end_ts is None or entry.first_ts < span.end_ts)


def _prune(head: ValueHead, entries: Entries, policy: IndexPolicy) -> None:
    """Drop entries too old for any indicator to reach: garbage collection only, matching is by timestamps."""
    head.pruned = head.watermark
    horizon = head.watermark - policy.retention_ms
    kept = []
    for person in head.people:
        entry = entries.get(person)
        if entry is not None and (entry.last_ts >= horizon or _holds_reverse_hit(head.span, entry, horizon, policy)):
            kept.append(person)
        elif entry is not None:
            del entries[person]
    if len(kept) != len(head.people):
        head.people = kept
        alive = set(kept)
        head.fanout_flagged = [p for p in head.fanout_flagged if p in alive]
        head.newcomers = [(ts, p) for ts, p in head.newcomers if p in alive]  # first reached long before: outside


def forget_person(head: ValueHead, entries: Entries, person: str) -> bool:
    """An erased person leaves the value: their entry, and every mention in the head; whether the head changed."""
    entries.pop(person, None)
    before = (len(head.people), len(head.newcomers), len(head.fanout_flagged))
    head.people = [p for p in head.people if p != person]
    head.newcomers = [(ts, p) for ts, p in head.newcomers if p != person]
    head.fanout_flagged = [p for p in head.fanout_flagged if p != person]
    return before != (len(head.people), len(head.newcomers), len(head.fanout_flagged))


def fanout(head: ValueHead, now_ts: int, policy: IndexPolicy) -> int:
    """Distinct people the value reached for the first time within the fan-out window before `now_ts`."""
    since = now_ts - policy.fanout_window_ms
    return len({p for ts, p in head.newcomers if since <= ts <= now_ts})


def add_contact(head: ValueHead, entries: Entries, contact: Contact, policy: IndexPolicy,
                track_fanout: bool = False) -> IndexUpdate:
    """Record a contact; the update carries the indicator match, and fan-out notes for numbers."""
    up = IndexUpdate()
    hour = contact.ts - contact.ts % HOUR_MS
    if hour > head.watermark:
        head.watermark = hour
        saturated = len(head.people) >= policy.max_people
        if hour - head.pruned >= 24 * HOUR_MS or saturated:  # daily, or hourly when room is needed
            _prune(head, entries, policy)
        up.head_changed = True
    if contact.ts < head.watermark - policy.retention_ms:
        return up  # older than anything an indicator may still reach back to
    entry = entries.get(contact.person)
    newcomer = entry is None
    if entry is None:
        if len(head.people) >= policy.max_people:
            up.overflow = True
        else:
            entries[contact.person] = Entry([(contact.ts, contact.event_id)])
            head.people.append(contact.person)
            up.head_changed = True
    elif all(e != contact.event_id for _, e in entry.contacts):  # a redelivered contact is kept once
        bisect.insort(entry.contacts, (contact.ts, contact.event_id))
        if len(entry.contacts) > MAX_CONTACTS:
            horizon = head.watermark - policy.retention_ms  # no indicator reaches back before it
            entry.contacts = [c for c in entry.contacts if c[0] >= horizon] or entry.contacts[-1:]
        if len(entry.contacts) > MAX_CONTACTS:
            del entry.contacts[1]  # the first stays (reverse hits from the start of the lookback), then the latest
        entries[contact.person] = entry
    if _matches(head.span, contact.ts, policy):
        assert head.span is not None
        up.hits.append((contact.person, _hit(contact.value_key, head.span, contact.ts, contact.event_id)))
    if track_fanout and newcomer and not up.overflow:
        since = contact.ts - policy.fanout_window_ms
        head.newcomers = [(ts, p) for ts, p in head.newcomers if ts >= since][-2 * policy.fanout_threshold:]
        head.newcomers.append((contact.ts, contact.person))
        up.hits.extend(_fanout_notes(head, entries, contact, policy))
    return up


def _fanout_notes(head: ValueHead, entries: Entries, contact: Contact,
                  policy: IndexPolicy) -> list[tuple[str, IndicatorHit]]:
    """When a number reaches the fan-out threshold, everyone it newly reached in the window hears of it, once."""
    n = fanout(head, contact.ts, policy)
    if n < policy.fanout_threshold:
        return []
    since = contact.ts - policy.fanout_window_ms
    flagged = set(head.fanout_flagged)
    out = []
    for ts, person in sorted(head.newcomers):
        e = entries.get(person)
        if e is not None and person not in flagged and ts >= since:
            flagged.add(person)
            out.append((person, IndicatorHit(value_key=contact.value_key, fraud_type="unknown", confidence=0.0,
                                             source="fanout", indicator_ts=contact.ts, contact_ts=e.last_ts,
                                             event_id=e.last_event_id, mode="fanout", fanout=n)))
    head.fanout_flagged = sorted(flagged)
    return out


def apply_indicator(head: ValueHead, entries: Entries, value_key: str, indicator: Indicator,
                    policy: IndexPolicy) -> IndexUpdate:
    """Add, retract or re-add the value's indicator; an add mines the index in reverse and returns the hits, a
    retraction (or a re-add that shortens the span) the notices to everyone listed."""
    up = IndexUpdate(head_changed=True)
    span = head.span
    if indicator.action == "retract":
        if span is not None:
            end = max(indicator.ts, span.add_ts)
            if span.end_ts is None or end < span.end_ts:
                span.end_ts = end
            if span.end_ts == end:  # also when it was set already: a redelivery re-sends what may have been lost
                up.notices = _notices(head, value_key, span.add_ts, end, indicator)
        return up
    old, add_ts, end = span, indicator.ts, indicator.expires_ts
    if old is not None and old.add_ts <= add_ts and (old.end_ts is None or add_ts < old.end_ts):
        add_ts = old.add_ts  # a second case naming the same value: it was known since the first
        if end is not None and (old.end_ts is None or end <= old.end_ts):
            # It ends the span earlier (or again, redelivered). Never before the re-add's own time: a decision
            # before that could not have known (streams/watermarks.py).
            up.notices = _notices(head, value_key, old.add_ts, max(end, indicator.ts), indicator)
    head.span = Span(add_ts=add_ts, fraud_type=indicator.fraud_type, confidence=max(indicator.confidence,
                     old.confidence if old is not None and add_ts == old.add_ts else 0.0),
                     source=indicator.source, end_ts=end)
    # A span that goes on (another case naming the value) hit its contacts already, at its add or as they came:
    # only the contacts it reaches now and did not before (an end moved later) are new hits.
    before = old if old is not None and old.add_ts == add_ts else None
    for person in sorted(head.people):
        entry = entries.get(person)
        if entry is None:
            continue
        # every contact kept that the span reaches: what forward matching gives had they come after the add
        up.hits += [(person, _hit(value_key, head.span, ts, event_id)) for ts, event_id in entry.contacts
                    if _matches(head.span, ts, policy) and not _matches(before, ts, policy)]
    return up


def _notices(head: ValueHead, value_key: str, add_ts: int, end_ts: int,
             change: Indicator) -> list[tuple[str, RetractionNote]]:
    """The span from `add_ts` ends at `end_ts`: a notice to every person listed (those it never hit ignore it)."""
    note = RetractionNote(value_key=value_key, add_ts=add_ts, end_ts=end_ts, ts=change.ts, source=change.source)
    return [(person, note) for person in sorted(head.people)]
