"""Victim features: pure functions of a person's state at an event time, named and ordered for the model."""
from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.units import DAY_MS, HOUR_MS
from streams.person_state import CallFact, PersonState, hit_live

SUSPECT_TAGS = {"spoof_suspect", "virtual_operator", "voip", "international"}
# Remote-meeting and screen-sharing apps: legitimate at work, and the tool of refund and "police" scams.
REMOTE_APPS = {"com.tencent.wemeet.app", "us.zoom.videomeetings", "com.teamviewer.teamviewer.market.mobile",
               "com.anydesk.anydeskandroid"}

FEATURES: tuple[str, ...] = (
    "hit_strong_72h",          # case elements of confidence >= 0.8 contacted
    "hit_weak_72h",            # low-confidence elements contacted (may be mistakes)
    "fanout_hit_72h",          # numbers that called many people within an hour, contacted
    "suspect_call_24h",        # calls from first-contact numbers carrying suspect tags
    "long_unknown_call_24h",   # inbound calls >= 10 min from first-contact numbers
    "log_longest_unknown_call_s_24h",
    "very_long_call_24h",      # >= 40 min with a first-contact number: the "police" script
    "sms_url_unknown_24h",     # SMS with a URL from a first-contact sender
    "new_domain_visit_24h",    # a site this person never visited before
    "app_install_24h",
    "remote_app_install_24h",
    "first_payee_out_24h",     # transfers initiated to payees never paid before
    "log_first_payee_amount_24h",
    "log_out_amount_24h",
    "out_transfers_1h",        # velocity
    "small_in_unknown_24h",    # small incoming transfers from unknown accounts ("rebates")
    "grooming_days_72h",       # days with contact from one first-seen suspect number
    "contact_then_pay_6h",     # a suspect contact followed by a first-payee transfer within 6 h
    "elderly",                 # 60 and over
    "young",                   # under 30
)


@dataclass(frozen=True)
class Snapshot:
    """What the scorer sees: the person's state, the event time to score at, and the registry's age."""

    state: PersonState
    now: int
    age: int | None = None


def _suspect_contact(c: CallFact) -> bool:
    return c.first_contact and (bool(SUSPECT_TAGS.intersection(c.tags)) or c.number_kind in ("international", "other"))


def features(snap: Snapshot) -> list[float]:
    """The feature vector of FEATURES, in order (one pass over each kind of fact)."""
    s, now = snap.state, snap.now
    day_ago, three_days_ago, hour_ago = now - DAY_MS, now - 3 * DAY_MS, now - HOUR_MS
    # Case elements contacted, each counted once: how many hits one element gives depends on whether the
    # contacts reached the index before or after it (one reverse hit, or one per late contact). A hit whose
    # indicator was retracted (or expired) by `now` counts no more.
    strong: set[str] = set()
    weak: set[str] = set()
    fanout: set[str] = set()
    for h in s.hits:
        if three_days_ago <= h.ts and hit_live(h, now):
            if h.mode == "fanout":
                fanout.add(h.value_key)
            elif h.confidence >= 0.8:
                strong.add(h.value_key)
            else:
                weak.add(h.value_key)
    hit_strong, hit_weak, hit_fanout = len(strong), len(weak - strong), len(fanout)
    suspect_24h = long_unknown = very_long = sms_url = 0
    longest = 0
    suspect_times: list[int] = []
    by_number: dict[str, set[int]] = {}
    for c in s.calls:
        if not three_days_ago <= c.ts <= now:
            continue
        suspect = _suspect_contact(c)
        unknown_in_call = c.first_contact and c.kind == "call" and c.direction == "in"
        sms_link = c.kind == "sms" and c.first_contact and bool(c.domains)
        if suspect or (unknown_in_call and c.duration_s >= 600) or sms_link:
            suspect_times.append(c.ts)
        if suspect or (not c.first_contact and c.counterpart in by_number):
            by_number.setdefault(c.counterpart, set()).add(c.ts // DAY_MS)
        if c.ts >= day_ago:
            suspect_24h += suspect
            sms_url += sms_link
            if unknown_in_call:
                longest = max(longest, c.duration_s)
                long_unknown += c.duration_s >= 600
                very_long += c.duration_s >= 2400
    new_domains = installs = remote = 0
    for w in s.web:
        if day_ago <= w.ts <= now:
            if w.kind == "app_install":
                installs += 1
                remote += w.target in REMOTE_APPS
            else:
                new_domains += w.first_contact
    first_out = first_amount = out_amount = out_1h = small_in = 0
    pay_after = False
    for p in s.payments:
        if not day_ago <= p.ts <= now:
            continue
        if p.direction == "in":
            small_in += p.first_contact and p.amount_fen <= 10_000
        elif p.status == "initiated":
            out_amount += p.amount_fen
            out_1h += p.ts >= hour_ago
            if p.first_contact:
                first_out += 1
                first_amount += p.amount_fen
                pay_after = pay_after or any(0 <= p.ts - t <= 6 * HOUR_MS for t in suspect_times)
    age = snap.age
    return [
        float(hit_strong), float(hit_weak), float(hit_fanout),
        float(suspect_24h), float(long_unknown), math.log1p(longest), float(very_long), float(sms_url),
        float(new_domains), float(installs), float(remote),
        float(first_out), math.log1p(first_amount / 100), math.log1p(out_amount / 100), float(out_1h),
        float(small_in),
        float(max((len(days) for days in by_number.values()), default=0)),
        float(pay_after),
        float(age is not None and age >= 60),
        float(age is not None and age < 30),
    ]
