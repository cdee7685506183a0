"""Per-person state: the windowed facts a scorer needs, updated by one event at a time in event time.

`apply_event(state, event, policy)` is pure: it returns the new state, the contacts to index (value → person)
and the triggers to score. Windows follow the person's own event-time watermark (the latest `ts` seen), so
replaying the same input at any speed yields the same state once every event is in.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec
from msgspec import Struct

from schemas.internal import Contact, IndicatorHit, PersonEvent, Trigger
from schemas.normalize import number_kind, url_domain
from schemas.records import DomainSignal, PaymentSignal, TelecomSignal

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class StatePolicy:
    """How long facts stay and how many of each a person keeps (the bounds of the state's size)."""

    window_ms: int = 72 * HOUR_MS
    memory_ms: int = 30 * DAY_MS  # how long a number, domain or payee stays "known" to the person
    max_facts: int = 64  # per kind of fact
    max_known: int = 256  # per kind of known counterpart


class CallFact(Struct, array_like=True):
    """A call or SMS with a counterpart."""

    ts: int
    kind: str  # call | sms
    direction: str
    counterpart: str
    number_kind: str
    duration_s: int
    tags: list[str]
    first_contact: bool
    domains: list[str]  # SMS URL domains
    event_id: str


class WebFact(Struct, array_like=True):
    """A DNS lookup, HTTP visit or app install."""

    ts: int
    kind: str
    target: str  # domain or app
    first_contact: bool
    event_id: str


class PaymentFact(Struct, array_like=True):
    """One event of a transfer, out of or into the person's accounts."""

    ts: int
    transfer_id: str
    status: str
    direction: str  # out | in
    counterparty: str
    amount_fen: int
    first_contact: bool  # first payment between these two (for outgoing: the bank's flag when it sent one)
    channel: str
    event_id: str


class HitFact(Struct, array_like=True):
    """A contact with a case element or with a high fan-out number; `ts` is when it became known."""

    ts: int
    contact_ts: int
    value_key: str
    fraud_type: str
    confidence: float
    mode: str
    indicator_ts: int
    source: str
    fanout: int
    event_id: str


class PersonState(Struct, kw_only=True, omit_defaults=True):
    """All a worker keeps about one person (or one unregistered line or account)."""

    person: str
    subject_id: str | None = None
    watermark: int = 0
    calls: list[CallFact] = []
    web: list[WebFact] = []
    payments: list[PaymentFact] = []
    hits: list[HitFact] = []
    known: dict[str, list[int]] = {}  # "phone:…", "domain:…", "account:…" → [first, last] event time
    controlled_by: str | None = None  # the case or indicator that put the person's accounts under control


@dataclass
class Update:
    """What one event produced: contacts to index and triggers to score."""

    contacts: list[Contact] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    late: bool = False  # older than the window: not applied (counted by the agent's metrics)


def new_state(person: str, subject_id: str | None = None) -> PersonState:
    """An empty state for a person key."""
    return PersonState(person=person, subject_id=subject_id)


def _trim(facts: list, horizon: int, keep: int) -> list:
    kept = [f for f in facts if f.ts >= horizon]
    kept.sort(key=lambda f: (f.ts, f.event_id))  # event time, then id: the same order whatever the arrival
    return kept[-keep:]


def _first_contact(state: PersonState, key: str, ts: int, policy: StatePolicy) -> bool:
    """True when nothing earlier in event time (within memory) touched `key`; remembers this contact."""
    first, last = state.known.get(key, (ts, ts))
    first_contact = ts <= first or ts - first > policy.memory_ms
    state.known[key] = [min(first, ts), max(last, ts)]
    return first_contact


def _trim_known(state: PersonState, policy: StatePolicy) -> None:
    horizon = state.watermark - policy.memory_ms
    items = [(k, v) for k, v in state.known.items() if v[1] >= horizon]
    if len(items) > policy.max_known:
        items.sort(key=lambda kv: (kv[1][1], kv[0]))
        items = items[-policy.max_known:]
    state.known = dict(items)


def _demote_later(facts: list, same: Callable[[Any], bool], ts: int) -> None:
    """An earlier contact arrived late: the facts after it in event time were not first contacts after all."""
    for f in facts:
        if f.ts > ts and same(f):
            f.first_contact = False


def _telecom(state: PersonState, rec: TelecomSignal, policy: StatePolicy, up: Update) -> None:
    key = f"phone:{rec.counterpart}"
    first = _first_contact(state, key, rec.ts, policy)
    _demote_later(state.calls, lambda f: f.counterpart == rec.counterpart, rec.ts)
    domains = sorted({d for d in (url_domain(u) for u in rec.urls) if d})
    state.calls.append(CallFact(rec.ts, rec.kind, rec.direction, rec.counterpart,
                                number_kind(rec.counterpart).value, rec.duration_s, list(rec.counterpart_tags),
                                first, domains, rec.event_id))
    if rec.counterpart:
        up.contacts.append(Contact(value_key=key, person=state.person, ts=rec.ts, event_id=rec.event_id))
    for d in domains:
        _first_contact(state, f"domain:{d}", rec.ts, policy)
        up.contacts.append(Contact(value_key=f"domain:{d}", person=state.person, ts=rec.ts, event_id=rec.event_id))


def _domain(state: PersonState, rec: DomainSignal, policy: StatePolicy, up: Update) -> None:
    if rec.kind == "app_install":
        key, target = f"app:{rec.app}", rec.app or ""
    else:
        key, target = f"domain:{rec.domain}", rec.domain or ""
    first = _first_contact(state, key, rec.ts, policy)
    _demote_later(state.web, lambda f: f.target == target and (f.kind == "app_install") == (rec.kind == "app_install"),
                  rec.ts)
    state.web.append(WebFact(rec.ts, rec.kind, target, first, rec.event_id))
    up.contacts.append(Contact(value_key=key, person=state.person, ts=rec.ts, event_id=rec.event_id))


def _payment(state: PersonState, rec: PaymentSignal, role: str, policy: StatePolicy, up: Update) -> None:
    if role == "payee":
        direction, counterparty = "in", rec.payer_account
    else:
        direction, counterparty = "out", rec.payee_account
    key = f"account:{counterparty}"
    first_seen = _first_contact(state, key, rec.ts, policy)
    _demote_later(state.payments, lambda f: f.counterparty == counterparty and f.direction == direction, rec.ts)
    # The bank knows its own history better than our 30-day memory does: its flag wins when present.
    first = first_seen if rec.payee_first_seen is None or direction == "in" else rec.payee_first_seen
    state.payments.append(PaymentFact(rec.ts, rec.transfer_id, rec.status, direction, counterparty,
                                      rec.amount_fen, first, rec.channel, rec.event_id))
    up.contacts.append(Contact(value_key=key, person=state.person, ts=rec.ts, event_id=rec.event_id))


def trigger_id(person: str, *parts: str) -> str:
    """A stable id: the same person and evidence always give the same id, whatever the run."""
    return hashlib.sha1("|".join((person, *parts)).encode()).hexdigest()[:20]


def _hit(state: PersonState, hit: IndicatorHit, up: Update) -> None:
    known_ts = max(hit.contact_ts, hit.indicator_ts)
    state.hits.append(HitFact(known_ts, hit.contact_ts, hit.value_key, hit.fraud_type, hit.confidence, hit.mode,
                              hit.indicator_ts, hit.source, hit.fanout, hit.event_id))
    up.triggers.append(Trigger(trigger_id=trigger_id(state.person, hit.value_key, hit.event_id, hit.mode),
                               person=state.person, subject_id=state.subject_id,
                               ts=known_ts, cause="indicator_hit", mode=hit.mode,
                               value_key=hit.value_key, fraud_type=hit.fraud_type, event_id=hit.event_id))


def apply_event(state: PersonState, event: PersonEvent, policy: StatePolicy) -> Update:
    """Fold one event into the person's state (in place) and say what it produced."""
    if _already_applied(state, event):
        # A replay after a crash: the state has it, but the outputs may not have been sent. Recompute them on a
        # scratch copy and send them again under the same ids (consumers deduplicate by id).
        scratch = _state_copy(state)
        scratch.calls, scratch.web, scratch.payments, scratch.hits = [], [], [], []
        scratch.controlled_by = None
        return apply_event(scratch, event, policy)
    up = Update()
    if event.subject_id:
        state.subject_id = event.subject_id
    ts = _event_ts(event)
    if state.watermark and ts < state.watermark - policy.window_ms:
        # Beyond the window it cannot change a decision; the agent counts it so nothing vanishes unseen.
        up.late = True
        return up
    if event.telecom is not None:
        _telecom(state, event.telecom, policy, up)
    elif event.domain is not None:
        _domain(state, event.domain, policy, up)
    elif event.payment is not None:
        _payment(state, event.payment, event.role, policy, up)
    elif event.hit is not None:
        _hit(state, event.hit, up)
    elif event.control is not None:
        state.controlled_by = event.control.source
        up.triggers.append(Trigger(trigger_id=trigger_id(state.person, "control", event.control.source),
                                   person=state.person, subject_id=state.subject_id, ts=event.control.ts,
                                   cause="control", mode="control", value_key=f"account:{event.control.account}",
                                   fraud_type="unknown", event_id=event.control.source))
    state.watermark = max(state.watermark, ts)
    horizon = state.watermark - policy.window_ms
    state.calls = _trim(state.calls, horizon, policy.max_facts)
    state.web = _trim(state.web, horizon, policy.max_facts)
    state.payments = _trim(state.payments, horizon, policy.max_facts)
    state.hits = _trim(state.hits, horizon, policy.max_facts)
    _trim_known(state, policy)
    return up


def _already_applied(state: PersonState, event: PersonEvent) -> bool:
    if event.telecom is not None:
        return any(f.event_id == event.telecom.event_id for f in state.calls)
    if event.domain is not None:
        return any(f.event_id == event.domain.event_id for f in state.web)
    if event.payment is not None:
        direction = "in" if event.role == "payee" else "out"
        return any(f.event_id == event.payment.event_id and f.direction == direction for f in state.payments)
    if event.hit is not None:
        h = event.hit
        return any(f.value_key == h.value_key and f.event_id == h.event_id and f.mode == h.mode for f in state.hits)
    if event.control is not None:
        return state.controlled_by == event.control.source
    return False


_state_decoder = msgspec.json.Decoder(PersonState)


def _state_copy(state: PersonState) -> PersonState:
    return _state_decoder.decode(msgspec.json.encode(state))


def _event_ts(event: PersonEvent) -> int:
    for rec in (event.telecom, event.payment, event.domain):
        if rec is not None:
            return rec.ts
    if event.hit is not None:
        # A reverse hit concerns an old contact but is news now: it counts at the indicator's time.
        return max(event.hit.contact_ts, event.hit.indicator_ts)
    return event.control.ts if event.control is not None else 0
