"""Scam scripts followed through a person's facts: the stages of steering that come before the money.

Every script seen in the field has the same shape: someone makes contact (a call, an SMS), steers the person
(a long talk, a link to follow, an app installed while on the call, small "rebates" paid in) and then money
moves to a payee the person never paid. Each stage happens in ordinary life on its own: a telemarketer talks for
twenty minutes, a shop sends a link, a colleague asks for a meeting app, a refund comes in. What ordinary life
rarely shows is several of them at once. So a stage is found from facts tied to each other, and a script is the
most distinct stages found within one session (`SESSION_MS`: a scammer leads a victim from one step to the next
within the hour, whatever the days between sessions), among the stages of `SCRIPT_WINDOW_MS` before the moment
judged:

    long_talk   an incoming call of 10 minutes or more from a personal, virtual, foreign or unknown number
                (not a bank's or a business's service line)
    link        a site visited within two hours after an SMS from such a number linked to it
    install     an app installed while on an incoming call of 3 minutes or more from such a number (from its
                start, as operators stamp calls, to five minutes after its end), or within half an hour after a
                linked site was visited
    rebate      small transfers (¥100 or less each) in from accounts the person had not been paid from, two or
                more, after a link or an install (task scams pay a few "rebates" once the app is in; one alone,
                or with nothing before it, is a refund or a red packet)

Whether a number is new to the person is left out on purpose: a worker that starts today knows nobody yet, and
in a city it has watched for days that is still true of every courier. Stages use only facts up to the moment
judged, so a decision sees the script as it stood then.
"""
from __future__ import annotations

from dataclasses import dataclass

from schemas.normalize import NumberKind
from schemas.units import HOUR_MS
from streams.person_state import CallFact, PersonState, since

STAGES = ("long_talk", "link", "install", "rebate")
SCRIPT_WINDOW_MS = 12 * HOUR_MS
SESSION_MS = 2 * HOUR_MS
LONG_TALK_S = 600
ON_CALL_S = 180  # a call at least this long can walk someone through an install
STEER_MS = 5 * 60_000  # how soon after a call ends an install still counts as made on it
AFTER_LINK_MS = 30 * 60_000  # ... and after a linked site was visited
LINK_MS = 2 * HOUR_MS
REBATE_FEN = 10_000  # ¥100: the "rebates" of task scams are small
SERVICE_KINDS = {NumberKind.SERVICE.value, NumberKind.SMS_BUSINESS.value}


@dataclass(frozen=True)
class Stage:
    """One stage of a script: which, when, the event that shows it, and the number behind it (if any)."""

    name: str
    ts: int
    event_id: str
    counterpart: str = ""


def _steering(c: CallFact) -> bool:
    """An incoming contact from a number that is not a service line."""
    return c.direction == "in" and c.number_kind not in SERVICE_KINDS


def stages(state: PersonState, now: int, window_ms: int = SCRIPT_WINDOW_MS) -> list[Stage]:
    """Every stage found in the facts within `window_ms` before `now` (links and on-call installs may reach
    back a little further to the contact that set them up), in event-time order."""
    lo = now - window_ms
    calls = [c for c in since(state.calls, lo - LINK_MS) if c.ts <= now and _steering(c)]
    web = [w for w in since(state.web, lo) if w.ts <= now]
    out: list[Stage] = []
    for c in calls:
        if c.kind == "call" and c.duration_s >= LONG_TALK_S and c.ts >= lo:
            out.append(Stage("long_talk", c.ts, c.event_id, c.counterpart))
    linked_visits = []
    for w in web:
        if w.kind == "app_install":
            continue
        sender = next((c for c in calls if w.target in c.domains and c.ts <= w.ts <= c.ts + LINK_MS), None)
        if sender is not None:
            out.append(Stage("link", w.ts, w.event_id, sender.counterpart))
            linked_visits.append((w, sender))
    for w in web:
        if w.kind != "app_install":
            continue
        caller = next((c for c in calls if c.kind == "call" and c.duration_s >= ON_CALL_S
                       and c.ts <= w.ts <= c.ts + c.duration_s * 1000 + STEER_MS), None)
        via = next(((v, s) for v, s in linked_visits if v.ts <= w.ts <= v.ts + AFTER_LINK_MS), None)
        if caller is not None:
            out.append(Stage("install", w.ts, w.event_id, caller.counterpart))
        elif via is not None:
            out.append(Stage("install", w.ts, w.event_id, via[1].counterpart))
    steered = min((s.ts for s in out if s.name in ("link", "install")), default=None)
    if steered is not None:
        small_in = sorted((p for p in since(state.payments, steered) if p.ts <= now and p.direction == "in"
                           and p.first_contact and p.amount_fen <= REBATE_FEN and p.status == "initiated"),
                          key=lambda p: p.ts)
        if len({p.transfer_id for p in small_in}) >= 2:
            out.append(Stage("rebate", small_in[1].ts, small_in[1].event_id))
    return sorted(out, key=lambda s: (s.ts, s.name))


def distinct(found: list[Stage]) -> set[str]:
    """The distinct stages among those found."""
    return {s.name for s in found}


def session(found: list[Stage], session_ms: int = SESSION_MS) -> set[str]:
    """The most distinct stages found within any one session (`found` in event-time order)."""
    best: set[str] = set()
    for i, first in enumerate(found):
        names = {s.name for s in found[i:] if s.ts - first.ts <= session_ms}
        if len(names) > len(best):
            best = names
    return best


def session_pairs(found: list[Stage], session_ms: int = SESSION_MS) -> set[tuple[str, str]]:
    """The pairs of distinct stages found together within one session, each as (earlier name, later name) sorted
    by name so the pair does not depend on which came first."""
    pairs: set[tuple[str, str]] = set()
    for i, a in enumerate(found):
        for b in found[i + 1:]:
            if b.ts - a.ts > session_ms:
                break
            if a.name != b.name:
                pairs.add((min(a.name, b.name), max(a.name, b.name)))
    return pairs


def script_before(state: PersonState, when: int) -> set[str]:
    """The stages of the most advanced session within the script window before `when` (what a transfer then
    followed)."""
    return session(stages(state, when))
