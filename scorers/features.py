"""Victim features: pure functions of a person's state at an event time, named and ordered for the model.

Single facts (a tagged caller, a long call, a first payee) are kept as features but weigh little: each is daily
life somewhere. What weighs is a script in progress (scorers/script.py): several stages of steering within
hours, and money moving to a new payee after them. Case elements contacted count only while their
indicator stands (a retracted one stops counting from its retraction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from schemas.units import DAY_MS, HOUR_MS
from scorers.script import SERVICE_KINDS, STAGES, distinct, script_before, session, session_pairs, stages
from streams.person_state import CallFact, PersonState, hit_live, since

SUSPECT_TAGS = {"spoof_suspect", "virtual_operator", "voip", "international"}
# Remote-meeting and screen-sharing apps: legitimate at work, and the tool of refund and "police" scams.
REMOTE_APPS = {"com.tencent.wemeet.app", "us.zoom.videomeetings", "com.teamviewer.teamviewer.market.mobile",
               "com.anydesk.anydeskandroid", "com.oray.sunlogin"}
STRONG_CONFIDENCE = 0.8
PAIRS = (("install", "long_talk"), ("link", "long_talk"), ("install", "link"))

FEATURES: tuple[str, ...] = (
    "hit_strong_72h",            # case elements of confidence >= 0.8 contacted (each once, while they stand)
    "hit_weak_72h",              # low-confidence elements contacted (may be mistakes)
    "fanout_hit_72h",            # numbers that called many people within an hour, contacted
    "new_tagged_contact_24h",    # first contacts from numbers the operator tagged, or foreign ones
    "log_longest_in_call_s_24h",  # the longest incoming call from a personal, virtual or foreign number
    "very_long_in_call_24h",     # 40 minutes or more: the "police" script
    "long_talk_12h",             # script stages within 12 h (scorers/script.py), each 0 or 1
    "link_followed_12h",
    "steered_install_12h",
    "rebate_12h",
    "script_stages_12h",         # the most of the four stages within one session (two hours)
    "session_talk_install",      # two stages together within one session, pair by pair
    "session_talk_link",
    "session_link_install",
    "script_stages_3plus",       # three stages or more within one session
    "remote_app_install_24h",    # a remote-meeting or screen-sharing app installed
    "first_payee_out_24h",       # transfers initiated to payees the bank says were never paid before
    "log_first_payee_amount_24h",
    "out_transfers_1h",          # velocity
    "pay_after_script_12h",      # a first-payee transfer within 12 h after two stages or more
    "small_in_unknown_24h",      # small incoming transfers from accounts not seen before
    "elderly",                   # 60 and over
    "young",                     # under 30
)


@dataclass(frozen=True)
class Snapshot:
    """What the scorer sees: the person's state, the event time to score at, and the registry's age."""

    state: PersonState
    now: int
    age: int | None = None


def suspect_contact(c: CallFact) -> bool:
    """A first contact from a number the operator tagged, or a foreign or unrecognisable one."""
    return c.first_contact and (bool(SUSPECT_TAGS.intersection(c.tags)) or c.number_kind in ("international", "other"))


def _hits(s: PersonState, now: int) -> tuple[int, int, int]:
    # Case elements contacted, each counted once: how many hits one element gives depends on whether the
    # contacts reached the index before or after it (one reverse hit, or one per late contact). A hit whose
    # indicator was retracted (or expired) by `now` counts no more.
    strong: set[str] = set()
    weak: set[str] = set()
    fanout: set[str] = set()
    for h in since(s.hits, now - 3 * DAY_MS):
        if hit_live(h, now):
            if h.mode == "fanout":
                fanout.add(h.value_key)
            elif h.confidence >= STRONG_CONFIDENCE:
                strong.add(h.value_key)
            else:
                weak.add(h.value_key)
    return len(strong), len(weak - strong), len(fanout)


def features(snap: Snapshot) -> list[float]:
    """The feature vector of FEATURES, in order."""
    s, now = snap.state, snap.now
    day_ago, hour_ago = now - DAY_MS, now - HOUR_MS
    hit_strong, hit_weak, hit_fanout = _hits(s, now)
    found = stages(s, now)
    script = session(found)
    pairs = session_pairs(found)
    tagged = longest = very_long = 0
    for c in since(s.calls, day_ago):
        if c.ts <= now:
            tagged += suspect_contact(c)
            if c.kind == "call" and c.direction == "in" and c.number_kind not in SERVICE_KINDS:
                longest = max(longest, c.duration_s)
                very_long += c.duration_s >= 40 * 60
    remote = sum(1 for w in since(s.web, day_ago)
                 if w.ts <= now and w.kind == "app_install" and w.target in REMOTE_APPS)
    first_out = first_amount = out_1h = small_in = 0
    pay_after = False
    for p in since(s.payments, day_ago):
        if p.ts > now:
            continue
        if p.direction == "in":
            small_in += p.first_contact and p.amount_fen <= 10_000
        elif p.status == "initiated":
            out_1h += p.ts >= hour_ago
            if p.first_contact:
                first_out += 1
                first_amount += p.amount_fen
                pay_after = pay_after or len(script_before(s, p.ts)) >= 2
    n = len(script)
    age = snap.age
    return [
        float(hit_strong), float(hit_weak), float(hit_fanout),
        float(tagged), math.log1p(longest), float(very_long),
        *(float(stage in seen) for seen in [distinct(found)] for stage in STAGES),
        float(n), *(float(pair in pairs) for pair in PAIRS), float(n >= 3),
        float(remote), float(first_out), math.log1p(first_amount / 100), float(out_1h), float(pay_after),
        float(small_in),
        float(age is not None and age >= 60), float(age is not None and age < 30),
    ]


def script_stages(x: list[float]) -> int:
    """The script stages a feature vector says the most advanced thread reached."""
    return int(x[FEATURES.index("script_stages_12h")])

