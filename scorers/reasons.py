"""Reason codes: why a person was scored as they were, in words an operator understands, from the facts."""
from __future__ import annotations

from schemas.internal import DecisionReason
from schemas.units import DAY_MS, HOUR_MS
from scorers.features import FEATURES, REMOTE_APPS, SUSPECT_TAGS, Snapshot, _suspect_contact
from streams.person_state import CallFact, PaymentFact, hit_live

TAG_WORDS = {"spoof_suspect": "suspected spoofed", "virtual_operator": "virtual-operator", "voip": "VoIP",
             "international": "international"}
MAX_REASONS = 4


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.0f}"


def _number_words(c: CallFact) -> str:
    tags = [TAG_WORDS[t] for t in c.tags if t in TAG_WORDS]
    kind = " ".join(tags) if tags else ("international" if c.number_kind == "international" else "unknown")
    return f"{kind} number {c.counterpart}"


def _minutes(ms: int) -> str:
    minutes = max(1, round(ms / 60_000))
    return f"{minutes} min" if minutes < 120 else f"{round(minutes / 60)} h"


def _recent_calls(snap: Snapshot, span: int) -> list[CallFact]:
    return [c for c in snap.state.calls if snap.now - span <= c.ts <= snap.now]


def _first_transfer(snap: Snapshot) -> PaymentFact | None:
    pays = [p for p in snap.state.payments if snap.now - DAY_MS <= p.ts <= snap.now and p.direction == "out"
            and p.status == "initiated" and p.first_contact]
    return max(pays, key=lambda p: p.ts) if pays else None


def _explain(name: str, snap: Snapshot) -> DecisionReason | None:
    s, now = snap.state, snap.now
    calls = _recent_calls(snap, DAY_MS)
    if name in ("hit_strong_72h", "hit_weak_72h", "fanout_hit_72h"):
        hits = [h for h in s.hits if now - 3 * DAY_MS <= h.ts and hit_live(h, now)]
        if name == "fanout_hit_72h":
            h = next((h for h in hits if h.mode == "fanout"), None)
            return h and DecisionReason(code="HIGH_FANOUT_NUMBER",
                                        detail=f"in contact with {h.value_key.split(':', 1)[1]}, which reached "
                                               f"{h.fanout} people within an hour")
        strong = name == "hit_strong_72h"
        h = next((h for h in sorted(hits, key=lambda h: -h.confidence)
                  if h.mode != "fanout" and (h.confidence >= 0.8) == strong), None)
        if h is None:
            return None
        kind, value = h.value_key.split(":", 1)
        when = (f"{_minutes(h.indicator_ts - h.contact_ts)} before it was known" if h.mode == "reverse"
                else "after it was known")
        return DecisionReason(code="CASE_ELEMENT_CONTACT" if strong else "LOW_CONFIDENCE_ELEMENT_CONTACT",
                              detail=f"contact with {kind} {value} named in {h.source} ({h.fraud_type}), {when}")
    if name == "contact_then_pay_6h":
        pay = _first_transfer(snap)
        calls3 = [c for c in _recent_calls(snap, DAY_MS) if _suspect_contact(c) or c.duration_s >= 600]
        before = [c for c in calls3 if pay and 0 <= pay.ts - c.ts <= 6 * HOUR_MS]
        if pay and before:
            c = before[-1]
            what = f"{_minutes(c.duration_s * 1000)} call" if c.kind == "call" else "SMS"
            return DecisionReason(code="CONTACT_THEN_FIRST_TRANSFER",
                                  detail=f"{what} from a {_number_words(c)} {_minutes(pay.ts - c.ts)} before a "
                                         f"first transfer of {_yuan(pay.amount_fen)} to a new payee")
        return None
    if name in ("suspect_call_24h", "long_unknown_call_24h", "very_long_call_24h", "log_longest_unknown_call_s_24h"):
        cands = [c for c in calls if c.kind == "call" and c.first_contact and
                 (bool(SUSPECT_TAGS.intersection(c.tags)) or c.duration_s >= 600)]
        if not cands:
            return None
        c = max(cands, key=lambda c: c.duration_s)
        code = "VERY_LONG_CALL_UNKNOWN" if c.duration_s >= 2400 else "LONG_CALL_UNKNOWN" if c.duration_s >= 600 \
            else "SUSPECT_NUMBER_CALL"
        return DecisionReason(code=code, detail=f"{_minutes(c.duration_s * 1000)} call from a {_number_words(c)} "
                                                f"never in contact before")
    if name == "sms_url_unknown_24h":
        c = next((c for c in reversed(calls) if c.kind == "sms" and c.first_contact and c.domains), None)
        return c and DecisionReason(code="SMS_LINK_UNKNOWN_SENDER",
                                    detail=f"SMS with a link to {c.domains[0]} from an unknown sender {c.counterpart}")
    if name in ("app_install_24h", "remote_app_install_24h"):
        apps = [w for w in s.web if now - DAY_MS <= w.ts <= now and w.kind == "app_install"]
        remote = [w for w in apps if w.target in REMOTE_APPS]
        w = (remote or apps or [None])[-1]
        if w is None:
            return None
        return DecisionReason(code="REMOTE_APP_INSTALL" if w in remote else "APP_INSTALL",
                              detail=f"installed {w.target}" + (" (remote meeting or screen sharing)" if w in remote else ""))
    if name == "new_domain_visit_24h":
        w = next((w for w in reversed(s.web) if now - DAY_MS <= w.ts <= now and w.kind != "app_install"
                  and w.first_contact), None)
        return w and DecisionReason(code="NEW_SITE_VISIT", detail=f"visited {w.target} for the first time")
    if name in ("first_payee_out_24h", "log_first_payee_amount_24h", "log_out_amount_24h", "out_transfers_1h"):
        pay = _first_transfer(snap)
        return pay and DecisionReason(code="FIRST_TRANSFER_NEW_PAYEE",
                                      detail=f"transfer of {_yuan(pay.amount_fen)} initiated to a new payee "
                                             f"{pay.counterparty}")
    if name == "small_in_unknown_24h":
        ins = [p for p in s.payments if now - DAY_MS <= p.ts <= now and p.direction == "in" and p.first_contact
               and p.amount_fen <= 10_000 and p.status == "completed"]
        return ins and DecisionReason(code="SMALL_REBATES_RECEIVED",
                                      detail=f"{len(ins)} small payments received from unknown accounts "
                                             f"(the 'rebates' of task scams)") or None
    if name == "grooming_days_72h":
        return DecisionReason(code="REPEATED_CONTACT_NEW_NUMBER",
                              detail="in contact with the same new suspect number on several days")
    if name == "elderly" and snap.age is not None:
        return DecisionReason(code="ELDERLY", detail=f"aged {snap.age}")
    if name == "young" and snap.age is not None:
        return DecisionReason(code="YOUNG", detail=f"aged {snap.age}")
    return None


def reasons(snap: Snapshot, contributions: list[float], payee_flagged: bool = False) -> list[DecisionReason]:
    """The reasons behind a score: the features pushing it up most, each told from the facts behind it."""
    out: list[DecisionReason] = []
    if payee_flagged:
        pay = _first_transfer(snap)
        out.append(DecisionReason(code="TRANSFER_TO_CASE_ACCOUNT",
                                  detail=f"transfer initiated to {pay.counterparty if pay else 'an account'} named in "
                                         f"a fraud case"))
    ranked = sorted((c, n) for n, c in zip(FEATURES, contributions) if c > 0)
    for _, name in reversed(ranked):
        reason = _explain(name, snap)
        if reason is not None and all(r.code != reason.code for r in out):
            out.append(reason)
        if len(out) >= MAX_REASONS:
            break
    if not out:  # a tier always says why, even when only a hit or a transfer put the person there
        for name in ("hit_strong_72h", "first_payee_out_24h"):
            reason = _explain(name, snap)
            if reason is not None:
                out.append(reason)
    return out
