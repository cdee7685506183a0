"""Reason codes: why a person was scored as they were, in words an operator understands, from the facts."""
from __future__ import annotations

from schemas.internal import DecisionReason
from schemas.masking import mask, shown, shown_counterpart
from schemas.units import DAY_MS
from scorers.features import FEATURES, REMOTE_APPS, STRONG_CONFIDENCE, Snapshot, suspect_contact
from scorers.script import SERVICE_KINDS, Stage, stages
from streams.person_state import CallFact, HitFact, PaymentFact, fact_order, hit_live

TAG_WORDS = {"spoof_suspect": "suspected spoofed", "virtual_operator": "virtual-operator", "voip": "VoIP",
             "international": "international"}
STAGE_WORDS = {"long_talk": "a long call", "link": "a link followed", "install": "an app installed on the call or "
               "after the link", "rebate": "a small payment received from an unknown account"}
STAGE_FEATURES = {"long_talk_12h": "long_talk", "link_followed_12h": "link", "steered_install_12h": "install",
                  "rebate_12h": "rebate"}
MAX_REASONS = 4


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.0f}"


def _number_words(c: CallFact) -> str:
    tags = [TAG_WORDS[t] for t in c.tags if t in TAG_WORDS]
    kind = " ".join(tags) if tags else ("international" if c.number_kind == "international" else "new")
    return f"{kind} number {mask(c.counterpart)}"


def _minutes(ms: int) -> str:
    minutes = max(1, round(ms / 60_000))
    return f"{minutes} min" if minutes < 120 else f"{round(minutes / 60)} h"


def _first_transfer(snap: Snapshot) -> PaymentFact | None:
    pays = [p for p in snap.state.payments if snap.now - DAY_MS <= p.ts <= snap.now and p.direction == "out"
            and p.status == "initiated" and p.first_contact]
    return max(pays, key=lambda p: p.ts) if pays else None


def _script_words(found: list[Stage]) -> str:
    first: dict[str, Stage] = {}
    for st in found:
        first.setdefault(st.name, st)
    parts = [STAGE_WORDS[st.name] + (f" ({shown_counterpart(st.counterpart)})" if st.counterpart else "")
             for st in sorted(first.values(), key=lambda st: st.ts)]
    return ", then ".join(parts)


def _hit_order(h: HitFact) -> tuple[tuple[int, str], str]:
    # as the state keeps facts (time, then id), then by value: a contact can hit several values at once
    return fact_order(h), h.value_key


def _hit_reason(snap: Snapshot, name: str) -> DecisionReason | None:
    s, now = snap.state, snap.now
    hits = [h for h in s.hits if now - 3 * DAY_MS <= h.ts and hit_live(h, now)]
    if name == "fanout_hit_72h":
        h = next((h for h in sorted(hits, key=_hit_order) if h.mode == "fanout"), None)
        return h and DecisionReason(code="HIGH_FANOUT_NUMBER",
                                    detail=f"in contact with {shown(*h.value_key.split(':', 1))}, which reached "
                                           f"{h.fanout} people within an hour")
    strong = name == "hit_strong_72h"
    # the earliest of the most confident: the same whichever arrived first
    h = next((h for h in sorted(hits, key=lambda h: (-h.confidence, _hit_order(h)))
              if h.mode != "fanout" and (h.confidence >= STRONG_CONFIDENCE) == strong), None)
    if h is None:
        return None
    kind, value = h.value_key.split(":", 1)
    when = (f"{_minutes(h.indicator_ts - h.contact_ts)} before it was known" if h.mode == "reverse"
            else "after it was known")
    return DecisionReason(code="CASE_ELEMENT_CONTACT" if strong else "LOW_CONFIDENCE_ELEMENT_CONTACT",
                          detail=f"contact with {kind} {shown(kind, value)} named in {h.source} ({h.fraud_type}), "
                                 f"{when}")


def _script_reason(snap: Snapshot, name: str) -> DecisionReason | None:
    if name == "pay_after_script_12h":
        pay = _first_transfer(snap)
        found = stages(snap.state, pay.ts) if pay else []
        if pay is None or len({st.name for st in found}) < 2:
            return None
        return DecisionReason(code="SCRIPT_THEN_FIRST_TRANSFER",
                              detail=f"a first transfer of {_yuan(pay.amount_fen)} to a new payee "
                                     f"{_minutes(pay.ts - found[0].ts)} after {_script_words(found)}")
    found = stages(snap.state, snap.now)
    if name.startswith("script_stages"):
        return found and DecisionReason(code="SCAM_SCRIPT_IN_PROGRESS", detail=_script_words(found)) or None
    stage = STAGE_FEATURES[name]
    st = next((st for st in found if st.name == stage), None)
    return st and DecisionReason(code=f"SCRIPT_STAGE_{stage.upper()}",
                                 detail=STAGE_WORDS[stage] + (f" ({shown_counterpart(st.counterpart)})"
                                                              if st.counterpart else ""))


def _explain(name: str, snap: Snapshot) -> DecisionReason | None:
    s, now = snap.state, snap.now
    if name in ("hit_strong_72h", "hit_weak_72h", "fanout_hit_72h"):
        return _hit_reason(snap, name)
    if name in ("pay_after_script_12h", "script_stages_12h", "script_stages_2plus", "script_stages_3plus",
                *STAGE_FEATURES):
        return _script_reason(snap, name)
    if name in ("new_tagged_contact_24h", "log_longest_in_call_s_24h", "very_long_in_call_24h"):
        calls = [c for c in s.calls if now - DAY_MS <= c.ts <= now and c.kind == "call" and c.direction == "in"
                 and c.number_kind not in SERVICE_KINDS]
        if name == "new_tagged_contact_24h":
            calls = [c for c in s.calls if now - DAY_MS <= c.ts <= now and suspect_contact(c)]
        if not calls:
            return None
        c = max(calls, key=lambda c: c.duration_s)
        code = "VERY_LONG_CALL" if c.duration_s >= 2400 else "LONG_CALL" if c.duration_s >= 600 \
            else "TAGGED_NEW_NUMBER"
        known = " never in contact before" if c.first_contact else ""
        return DecisionReason(code=code, detail=f"{_minutes(c.duration_s * 1000)} call from a {_number_words(c)}"
                                                f"{known}")
    if name == "remote_app_install_24h":
        w = next((w for w in reversed(s.web) if now - DAY_MS <= w.ts <= now and w.kind == "app_install"
                  and w.target in REMOTE_APPS), None)
        return w and DecisionReason(code="REMOTE_APP_INSTALL",
                                    detail=f"installed {w.target} (remote meeting or screen sharing)")
    if name in ("first_payee_out_24h", "log_first_payee_amount_24h", "out_transfers_1h"):
        pay = _first_transfer(snap)
        return pay and DecisionReason(code="FIRST_TRANSFER_NEW_PAYEE",
                                      detail=f"transfer of {_yuan(pay.amount_fen)} initiated to a new payee "
                                             f"{mask(pay.counterparty)}")
    if name == "small_in_unknown_24h":
        ins = [p for p in s.payments if now - DAY_MS <= p.ts <= now and p.direction == "in" and p.first_contact
               and p.amount_fen <= 10_000 and p.status == "completed"]
        return ins and DecisionReason(code="SMALL_PAYMENTS_RECEIVED",
                                      detail=f"{len(ins)} small payments received from unknown accounts") or None
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
        payee = mask(pay.counterparty) if pay else "an account"
        out.append(DecisionReason(code="TRANSFER_TO_CASE_ACCOUNT",
                                  detail=f"transfer initiated to {payee} named in a fraud case"))
    ranked = sorted((c, n) for n, c in zip(FEATURES, contributions) if c > 0)
    for _, name in reversed(ranked):
        reason = _explain(name, snap)
        if reason is not None and all(r.code != reason.code for r in out):
            out.append(reason)
        if len(out) >= MAX_REASONS:
            break
    if not out:  # a tier always says why, even when only a hit or a transfer put the person there
        for name in ("hit_strong_72h", "script_stages_12h", "first_payee_out_24h"):
            reason = _explain(name, snap)
            if reason is not None:
                out.append(reason)
    return out
