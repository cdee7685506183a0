"""Per-person state: the windowed facts a scorer needs, updated by one event at a time in event time.

`apply_event(state, event, policy)` folds one event into the state and returns the contacts to index
(value → person), the triggers to score, and whether the state changed at all. Windows follow the person's
own event-time watermark (the latest hour seen), so replaying the same input at any speed yields the same
state once every event is in.

Only notable facts are kept (first contacts, tagged or foreign numbers, long calls, SMS with URLs, new domains,
installs, every payment, every hit) and, so that a scam script can be followed from its first contact, every
later contact with a counterpart first seen within the window and the first visit to a site first seen within
it (a link a new sender sent); the person's other contacts only refresh `known`, at day resolution. An
event that changes nothing (a repeat call to family within the hour) writes nothing: at city scale the
changelog volume is the cost that matters (docs/sizing.md). A hit counts from when it became known until its
indicator's span ends (`hit_live`); a retraction notice sets that end on the hits of its span.
"""
from __future__ import annotations

import bisect
import hashlib
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec
from msgspec import Struct

from schemas.internal import (
    Contact,
    IndicatorHit,
    PersonEvent,
    RetractionNote,
    RiskState,
    Trigger,
)
from schemas.normalize import number_kind, url_domain
from schemas.records import DomainSignal, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS, HOUR_MS


@dataclass(frozen=True)
class StatePolicy:
    """How long facts stay and how many of each a person keeps (the bounds of the state's size)."""

    window_ms: int = 72 * HOUR_MS
    memory_ms: int = 30 * DAY_MS  # how long a number, domain or payee stays "known" to the person
    max_facts: int = 64  # per kind of fact
    max_known: int = 200  # known numbers, domains, apps and accounts together
    long_call_s: int = 300  # a call this long with anyone is notable

    def __post_init__(self) -> None:
        # A contact is folded up to `window_ms` late, and its day must still be inside the memory then: known
        # values are trimmed only when the memory's horizon passes a day (`_known_days`).
        if self.window_ms + DAY_MS > self.memory_ms:
            raise ValueError(f"state policy: the window ({self.window_ms // HOUR_MS} h) plus a day must not exceed "
                             f"the memory of known values ({self.memory_ms // HOUR_MS} h)")


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
    account: str = ""  # the person's own account in this transfer
    by_bank: bool = False  # `first_contact` is the bank's flag (an outgoing transfer's `payee_first_seen`), not ours
    counterparty_bank: str = ""  # an outgoing transfer's payee bank (where a stop-payment goes)
    own_bank: str = ""  # the payer's bank, when the signal names it


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
    end_ts: int | None = None  # the indicator's span ends here (expiry or retraction); last, so old states decode


def hit_live(h: HitFact, now: int) -> bool:
    """Whether a hit counts at event time `now`: known by then, and its indicator not retracted or expired yet."""
    return h.ts <= now and (h.end_ts is None or now < h.end_ts)


class PersonState(Struct, kw_only=True, omit_defaults=True):
    """All a worker keeps about one person (or one unregistered line or account)."""

    person: str
    subject_id: str | None = None
    watermark: int = 0
    calls: list[CallFact] = []
    web: list[WebFact] = []
    payments: list[PaymentFact] = []
    hits: list[HitFact] = []
    known: dict[int, list[int]] = {}  # known_key("phone:…" | "domain:…" | …) → [first ts, last day]
    controlled_by: str | None = None  # the case or indicator that put the person's accounts under control
    risk: RiskState | None = None  # the person's current tier, kept by the scorer (scorers/tiers.py assigns it)
    # per kind of fact, (time, event id) of the newest fact the cap dropped: what sorts at or before it is not
    # folded again (`_already_applied` cannot find a dropped fact)
    capped: dict[str, tuple[int, str]] = {}


FACT_KINDS = ("calls", "web", "payments", "hits")


@dataclass
class Update:
    """What one event produced: contacts to index and triggers to score."""

    contacts: list[Contact] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    late: bool = False  # older than the window: not applied (counted by the agent's metrics)
    changed: bool = False  # the state must be written back
    noted: bool = False  # a fact, hit or control was added: the evidence changed, so the scorer should look
    replay: bool = False  # the event was applied before (a redelivery after a crash): state unchanged
    floor: int = 2**62  # the partition's decided watermark (no decision will be taken before it)


def new_state(person: str, subject_id: str | None = None) -> PersonState:
    """An empty state for a person key."""
    return PersonState(person=person, subject_id=subject_id)


_fact_ts = operator.attrgetter("ts")  # a fact's event time (in C: bisect calls it at every step)


def _hour(ts: int) -> int:
    return ts - ts % HOUR_MS


def _trim(facts: list, horizon: int, keep: int, floor: int) -> tuple[list, Any]:
    """Facts from `horizon` on, in event-time order: the latest `keep` before `floor`, and all from it on; and
    the newest fact the cap dropped (None when it dropped none).

    `floor` is the partition's decided watermark: every decision still to take is at or after it and sees the
    latest `keep` facts up to its own time (`as_of`), so these are all it can need, however far ahead of the
    decisions the state has been folded. A hard cap bounds a flood beyond that.
    """
    kept = [f for f in facts if f.ts >= horizon]
    kept.sort(key=fact_order)
    first_after = bisect.bisect_left(kept, floor, key=_fact_ts)
    start = max(0, first_after - keep, len(kept) - HARD_CAP * keep)
    return kept[start:], (kept[start - 1] if start else None)


def fact_order(fact: Any) -> tuple[int, str]:
    """The order facts are kept in: event time, then id (the same whatever the arrival)."""
    return fact.ts, fact.event_id


HARD_CAP = 4  # × max_facts per kind: beyond, the oldest go even if a decision still to take would count them


def _append(state: PersonState, kind: str, fact: Any, policy: StatePolicy, up: Update) -> None:
    facts = getattr(state, kind)
    cut = state.capped.get(kind)
    if cut is not None and fact_order(fact) <= cut and fact.ts < up.floor:
        # The cap dropped facts up to `cut`, and the decisions have passed this one: it was folded and dropped
        # before (a redelivery after a crash, which `_already_applied` cannot find), or, arriving this late, the
        # cap would drop it at once. A fact that a decision still to take may count is kept whatever its order.
        return
    facts.append(fact)
    up.noted = True
    if len(facts) > policy.max_facts or (len(facts) > 1 and fact_order(fact) < fact_order(facts[-2])):
        _cap(state, kind, 0, policy.max_facts, up.floor)
    up.changed = True


def _cap(state: PersonState, kind: str, horizon: int, keep: int, floor: int) -> None:
    """Trim one kind of fact (`_trim`), remembering the newest fact the cap dropped."""
    kept, dropped = _trim(getattr(state, kind), horizon, keep, floor)
    setattr(state, kind, kept)
    if dropped is not None and (kind not in state.capped or fact_order(dropped) > state.capped[kind]):
        state.capped[kind] = fact_order(dropped)


def known_key(value_key: str) -> int:
    """The 64-bit key under which a person remembers a number, domain, app or account (a third of the bytes)."""
    return int.from_bytes(hashlib.blake2b(value_key.encode(), digest_size=8).digest(), "big")


def _first_contact(state: PersonState, value_key: str, ts: int, policy: StatePolicy,
                   up: Update) -> tuple[bool, int]:
    """Whether nothing earlier in event time (within memory) touched the value, and when it was first touched;
    remembers this contact.

    The last contact is kept at day resolution (the memory is 30 days), so repeats within a day change nothing.
    """
    day = ts - ts % DAY_MS
    key = known_key(value_key)
    entry = state.known.get(key)
    if entry is None or day - entry[1] > policy.memory_ms:
        state.known[key] = [ts, day]
        if len(state.known) > policy.max_known:
            _trim_known(state, policy, policy.max_known * 3 // 4)  # amortised: not on every new contact
        up.changed = True
        return True, ts
    first_contact = ts <= entry[0]
    if ts < entry[0]:
        entry[0] = ts
        up.changed = True
    if day > entry[1]:
        entry[1] = day
        up.changed = True
    return first_contact, entry[0]


def _trim_known(state: PersonState, policy: StatePolicy, keep: int) -> None:
    """Forget what is older than memory, and the least recently touched beyond `keep`."""
    horizon = state.watermark - policy.memory_ms
    items = [(k, v) for k, v in state.known.items() if v[1] >= horizon]
    if len(items) > keep:
        items.sort(key=lambda kv: (kv[1][1], kv[1][0], kv[0]))
        items = items[-keep:]
    state.known = dict(items)


def _demote_later(facts: list, same: Callable[[Any], bool], ts: int, up: Update) -> None:
    """An earlier contact arrived late: the facts after it in event time were not first contacts after all."""
    if not facts or facts[-1].ts <= ts:
        return  # in order: nothing later to demote (the common case)
    for f in facts:
        if f.ts > ts and f.first_contact and same(f):
            f.first_contact = False
            up.changed = True


NOTABLE_NUMBER_KINDS = {"international", "other"}


def _telecom(state: PersonState, rec: TelecomSignal, policy: StatePolicy, up: Update) -> None:
    key = f"phone:{rec.counterpart}"
    first, since = _first_contact(state, key, rec.ts, policy, up)
    _demote_later(state.calls, lambda f: f.counterpart == rec.counterpart, rec.ts, up)
    domains = sorted({d for d in (url_domain(u) for u in rec.urls) if d})
    kind = number_kind(rec.counterpart).value
    if rec.counterpart:
        up.contacts.append(Contact(value_key=key, person=state.person, ts=rec.ts, event_id=rec.event_id))
    for d in domains:
        _first_contact(state, f"domain:{d}", rec.ts, policy, up)  # the link's site: known from now on
        # a link to the domain came before a visit that arrived first: the visit was not a first contact
        _demote_later(state.web, lambda f, d=d: f.target == d and f.kind != "app_install", rec.ts, up)
        up.contacts.append(Contact(value_key=f"domain:{d}", person=state.person, ts=rec.ts, event_id=rec.event_id))
    notable = (first or rec.counterpart_tags or domains or rec.urls or kind in NOTABLE_NUMBER_KINDS
               or rec.duration_s >= policy.long_call_s or rec.ts - since <= policy.window_ms)
    if notable:
        _append(state, "calls", CallFact(rec.ts, rec.kind, rec.direction, rec.counterpart, kind, rec.duration_s,
                                      list(rec.counterpart_tags), first, domains, rec.event_id), policy, up)


def _domain(state: PersonState, rec: DomainSignal, policy: StatePolicy, up: Update) -> None:
    if rec.kind == "app_install":
        key, target = f"app:{rec.app}", rec.app or ""
    else:
        key, target = f"domain:{rec.domain}", rec.domain or ""
    first, since = _first_contact(state, key, rec.ts, policy, up)
    _demote_later(state.web, lambda f: f.target == target and (f.kind == "app_install") == (rec.kind == "app_install"),
                  rec.ts, up)
    up.contacts.append(Contact(value_key=key, person=state.person, ts=rec.ts, event_id=rec.event_id))
    # a site first seen within the window (a link in an SMS): its first visit is kept too, once
    followed = (not first and rec.ts - since <= policy.window_ms
                and not any(f.target == target and f.kind != "app_install" for f in state.web))
    if first or rec.kind == "app_install" or followed:
        _append(state, "web", WebFact(rec.ts, rec.kind, target, first, rec.event_id), policy, up)


def _payment(state: PersonState, rec: PaymentSignal, role: str, policy: StatePolicy, up: Update) -> None:
    if role == "payee":
        direction, counterparty, own = "in", rec.payer_account, rec.payee_account
    else:
        direction, counterparty, own = "out", rec.payee_account, rec.payer_account
    key = f"account:{counterparty}"
    first_seen, _ = _first_contact(state, key, rec.ts, policy, up)
    # Either direction makes the account known, so a transfer arriving late demotes the later ones both ways;
    # not where the first contact is the bank's word.
    _demote_later(state.payments, lambda f: f.counterparty == counterparty and not f.by_bank, rec.ts, up)
    # The bank knows its own history better than our 30-day memory does: its flag wins when present.
    by_bank = rec.payee_first_seen is not None and direction == "out"
    first = rec.payee_first_seen if by_bank else first_seen
    banks = (rec.payee_bank, rec.payer_bank or "") if direction == "out" else ("", "")
    _append(state, "payments", PaymentFact(rec.ts, rec.transfer_id, rec.status, direction, counterparty,
                                        rec.amount_fen, bool(first), rec.channel, rec.event_id, own, by_bank, *banks),
            policy, up)
    up.contacts.append(Contact(value_key=key, person=state.person, ts=rec.ts, event_id=rec.event_id))


def trigger_id(person: str, *parts: str) -> str:
    """A stable id: the same person and evidence always give the same id, whatever the run."""
    return hashlib.sha1("|".join((person, *parts)).encode()).hexdigest()[:20]


def episode_warning_id(person: str, episode_ts: int, tier: str) -> str:
    """The id of a person's warning at `tier` in the episode begun at `episode_ts` (a rise's decision id)."""
    return trigger_id(person, "episode", str(episode_ts), tier)


def _hit(state: PersonState, hit: IndicatorHit, policy: StatePolicy, up: Update) -> None:
    known_ts = max(hit.contact_ts, hit.indicator_ts)
    _append(state, "hits", HitFact(known_ts, hit.contact_ts, hit.value_key, hit.fraud_type, hit.confidence, hit.mode,
                                hit.indicator_ts, hit.source, hit.fanout, hit.event_id, hit.end_ts), policy, up)
    up.triggers.append(Trigger(trigger_id=trigger_id(state.person, hit.value_key, hit.event_id, hit.mode),
                               person=state.person, subject_id=state.subject_id,
                               ts=known_ts, cause="indicator_hit", mode=hit.mode,
                               value_key=hit.value_key, fraud_type=hit.fraud_type, event_id=hit.event_id))


def _retraction(state: PersonState, note: RetractionNote, up: Update) -> None:
    """End the hits of the note's span at the note's end (never later: applied twice, it changes nothing)."""
    # A redelivered note finds its end applied: nothing changes, nothing is noted, so no decision and no output
    # are made twice. No trigger: triggers announce exposures to case elements (campaigns count them).
    for h in state.hits:
        if (h.value_key == note.value_key and h.indicator_ts == note.add_ts and h.mode != "fanout"
                and (h.end_ts is None or note.end_ts < h.end_ts)):
            h.end_ts = note.end_ts
            up.changed = up.noted = True  # the evidence changed: the scorer looks again (and may release)


def apply_event(state: PersonState, event: PersonEvent, policy: StatePolicy, floor: int = 2**62) -> Update:
    """Fold one event into the person's state (in place) and say what it produced.

    `floor`: the partition's decided watermark; facts a decision still to take may count are kept (`_trim`).
    """
    if _already_applied(state, event):
        # A replay after a crash: the state has it, but the outputs may not have been sent. Recompute them on a
        # scratch copy and send them again under the same ids (consumers deduplicate by id).
        scratch = _state_copy(state)
        scratch.calls, scratch.web, scratch.payments, scratch.hits, scratch.capped = [], [], [], [], {}
        scratch.controlled_by = None  # the replay re-derives its outputs; scoring sees the real state
        update = apply_event(scratch, event, policy, floor)
        update.replay, update.changed = True, False
        return update
    up = Update(floor=floor)
    if event.subject_id and event.subject_id != state.subject_id:
        state.subject_id = event.subject_id
        up.changed = True
    ts = event_time(event)
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
        _hit(state, event.hit, policy, up)
    elif event.retraction is not None:
        _retraction(state, event.retraction, up)
    elif event.control is not None:
        state.controlled_by = event.control.source
        up.changed = up.noted = True
        up.triggers.append(Trigger(trigger_id=trigger_id(state.person, "control", event.control.source),
                                   person=state.person, subject_id=state.subject_id, ts=event.control.ts,
                                   cause="control", mode="control", value_key=f"account:{event.control.account}",
                                   fraud_type="unknown", event_id=event.control.source))
    if _hour(ts) > state.watermark:
        # The window moves at most once an hour per person: trimming is amortised, and repeats write nothing.
        known_before = _known_days(state.watermark, policy)
        state.watermark = _hour(ts)
        horizon = min(state.watermark, floor) - policy.window_ms
        for kind in FACT_KINDS:
            facts = getattr(state, kind)
            # Kept in order, so the first is the oldest: nothing has left the window while it is inside, and at
            # most `max_facts` nothing is over the cap either (more are kept while the decisions lag: the floor
            # has moved since).
            if facts and (facts[0].ts < horizon or len(facts) > policy.max_facts):
                _cap(state, kind, horizon, policy.max_facts, floor)
        if _known_days(state.watermark, policy) != known_before or len(state.known) > policy.max_known:
            _trim_known(state, policy, policy.max_known)
        up.changed = True
    return up


def _known_days(watermark: int, policy: StatePolicy) -> int:
    """How many day stamps lie before the memory's horizon: what `_trim_known` drops changes only with it
    (a known value's last contact is kept as its day)."""
    return -(-(watermark - policy.memory_ms) // DAY_MS)


def event_key(event: PersonEvent) -> str:
    """A person event's identity: the signal's event id, or what a hit or control is about."""
    for rec in (event.telecom, event.payment, event.domain):
        if rec is not None:
            return f"{rec.event_id}|{event.role}"
    if event.hit is not None:
        return f"hit|{event.hit.value_key}|{event.hit.event_id}|{event.hit.mode}"
    if event.retraction is not None:
        note = event.retraction
        return f"retraction|{note.value_key}|{note.add_ts}|{note.end_ts}"
    return f"control|{event.control.source}" if event.control is not None else ""


def as_of(state: PersonState, now: int, keep: int = StatePolicy.max_facts) -> PersonState:
    """The state as a decision at event time `now` sees it: facts up to `now`, the latest `keep` of each kind
    (what an in-order fold would hold then; later facts may already be in, folded ahead of the decisions).
    The state itself when it holds nothing else, as when the decisions keep up: read it, never change it."""
    if all((not facts or facts[-1].ts <= now) and len(facts) <= keep
           for facts in (state.calls, state.web, state.payments, state.hits)):
        return state

    def upto(facts: list) -> list:
        end = bisect.bisect_right(facts, now, key=_fact_ts)
        return facts[max(0, end - keep):end]

    return msgspec.structs.replace(state, calls=upto(state.calls), web=upto(state.web),
                                   payments=upto(state.payments), hits=upto(state.hits))


def since(facts: list, ts: int) -> list:
    """The facts at or after event time `ts` (a kind of fact is kept in event-time order: bisect)."""
    return facts[bisect.bisect_left(facts, ts, key=_fact_ts):]


def earliest_evidence(state: PersonState, now: int, window_ms: int) -> int:
    """The event time of the earliest notable fact within the window before `now` (or `now`)."""
    lo = now - window_ms
    first = now
    for facts in (state.calls, state.web, state.payments):  # in event-time order: the first in the window
        i = bisect.bisect_left(facts, lo, key=_fact_ts)
        if i < len(facts) and facts[i].ts < first:
            first = facts[i].ts
    for h in since(state.hits, lo):
        if h.ts >= first:
            break
        if hit_live(h, now):
            first = h.ts
            break
    return first


def _has_fact(facts: list, ts: int, match: Callable[[Any], bool]) -> bool:
    """Whether a fact at event time `ts` satisfies `match` (facts are sorted by time: bisect, then scan the tie)."""
    i = bisect.bisect_left(facts, ts, key=_fact_ts)
    while i < len(facts) and facts[i].ts == ts:
        if match(facts[i]):
            return True
        i += 1
    return False


def _already_applied(state: PersonState, event: PersonEvent) -> bool:
    if event.telecom is not None:
        rec = event.telecom
        return _has_fact(state.calls, rec.ts, lambda f: f.event_id == rec.event_id)
    if event.domain is not None:
        dom = event.domain
        return _has_fact(state.web, dom.ts, lambda f: f.event_id == dom.event_id)
    if event.payment is not None:
        pay, direction = event.payment, ("in" if event.role == "payee" else "out")
        return _has_fact(state.payments, pay.ts, lambda f: f.event_id == pay.event_id and f.direction == direction)
    if event.hit is not None:
        h = event.hit
        return _has_fact(state.hits, max(h.contact_ts, h.indicator_ts),
                         lambda f: f.value_key == h.value_key and f.event_id == h.event_id and f.mode == h.mode)
    if event.control is not None:
        return state.controlled_by == event.control.source
    return False


_state_decoder = msgspec.msgpack.Decoder(PersonState)


def encode_state(state: PersonState) -> bytes:
    """The state as stored in the `persons` table (msgpack: compact, and fast to decode)."""
    return msgspec.msgpack.encode(state)


def decode_state(raw: bytes) -> PersonState:
    """A state read back from the `persons` table."""
    return _state_decoder.decode(raw)


def _state_copy(state: PersonState) -> PersonState:
    return decode_state(encode_state(state))


def event_time(event: PersonEvent) -> int:
    """The event time a person event counts at (a reverse hit: when it became known)."""
    for rec in (event.telecom, event.payment, event.domain):
        if rec is not None:
            return rec.ts
    if event.hit is not None:
        # A reverse hit concerns an old contact but is news now: it counts at the indicator's time.
        return max(event.hit.contact_ts, event.hit.indicator_ts)
    if event.retraction is not None:
        return event.retraction.ts  # when the end became known (the end itself may lie ahead: an expiry)
    return event.control.ts if event.control is not None else 0
