"""Reason codes: why a person was scored as they were, in words an operator understands (their language), from
the facts."""
from __future__ import annotations

from schemas.catalogue import N_, tr
from schemas.internal import DecisionReason
from schemas.labels import fraud_type_words
from schemas.masking import mask, shown, shown_counterpart
from schemas.units import DAY_MS
from scorers.features import FEATURES, REMOTE_APPS, STRONG_CONFIDENCE, Snapshot, suspect_contact
from scorers.script import SERVICE_KINDS, Stage, stages
from streams.person_state import CallFact, HitFact, PaymentFact, fact_order, hit_live

# English words (the catalogue's msgids); every text below is given in the operators' language (`tr`)
TAG_WORDS = {"spoof_suspect": N_("suspected spoofed"), "virtual_operator": N_("virtual-operator"),
             "voip": N_("VoIP"), "international": N_("international")}
STAGE_WORDS = {"long_talk": N_("a long call"), "link": N_("a link followed"),
               "install": N_("an app installed on the call or after the link"),
               "rebate": N_("a small payment received from an unknown account")}
VALUE_WORDS = {"phone": N_("phone"), "domain": N_("domain"), "account": N_("account"), "app": N_("app"),
               "url": N_("web address")}
STAGE_FEATURES = {"long_talk_12h": "long_talk", "link_followed_12h": "link", "steered_install_12h": "install",
                  "rebate_12h": "rebate"}
MAX_REASONS = 4


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.0f}"


def _number_words(c: CallFact) -> str:
    tags = [tr(TAG_WORDS[t]) for t in c.tags if t in TAG_WORDS]
    kind = " ".join(tags) if tags else tr(N_("international") if c.number_kind == "international" else N_("new"))
    return tr("{kind} number {number}", kind=kind, number=mask(c.counterpart))


def _minutes(ms: int) -> str:
    minutes = max(1, round(ms / 60_000))
    return tr("{n} min", n=minutes) if minutes < 120 else tr("{n} h", n=round(minutes / 60))


def _stage_words(st: Stage) -> str:
    what = tr(STAGE_WORDS[st.name])
    return tr("{what} ({who})", what=what, who=shown_counterpart(st.counterpart)) if st.counterpart else what


def _first_transfer(snap: Snapshot) -> PaymentFact | None:
    pays = [p for p in snap.state.payments if snap.now - DAY_MS <= p.ts <= snap.now and p.direction == "out"
            and p.status == "initiated" and p.first_contact]
    return max(pays, key=lambda p: p.ts) if pays else None


def _script_words(found: list[Stage]) -> str:
    first: dict[str, Stage] = {}
    for st in found:
        first.setdefault(st.name, st)
    return tr(", then ").join(_stage_words(st) for st in sorted(first.values(), key=lambda st: st.ts))


def _hit_order(h: HitFact) -> tuple[tuple[int, str], str]:
    # as the state keeps facts (time, then id), then by value: a contact can hit several values at once
    return fact_order(h), h.value_key


def _hit_reason(snap: Snapshot, name: str) -> DecisionReason | None:
    s, now = snap.state, snap.now
    hits = [h for h in s.hits if now - 3 * DAY_MS <= h.ts and hit_live(h, now)]
    if name == "fanout_hit_72h":
        h = next((h for h in sorted(hits, key=_hit_order) if h.mode == "fanout"), None)
        return h and DecisionReason(code="HIGH_FANOUT_NUMBER",
                                    detail=tr("in contact with {value}, which reached {n} people within an hour",
                                              value=shown(*h.value_key.split(':', 1)), n=h.fanout))
    strong = name == "hit_strong_72h"
    # the earliest of the most confident: the same whichever arrived first
    h = next((h for h in sorted(hits, key=lambda h: (-h.confidence, _hit_order(h)))
              if h.mode != "fanout" and (h.confidence >= STRONG_CONFIDENCE) == strong), None)
    if h is None:
        return None
    kind, value = h.value_key.split(":", 1)
    when = (tr("{duration} before it was known", duration=_minutes(h.indicator_ts - h.contact_ts))
            if h.mode == "reverse" else tr("after it was known"))
    return DecisionReason(code="CASE_ELEMENT_CONTACT" if strong else "LOW_CONFIDENCE_ELEMENT_CONTACT",
                          detail=tr("contact with {kind} {value} named in {source} ({fraud_type}), {when}",
                                    kind=tr(VALUE_WORDS.get(kind, kind)), value=shown(kind, value), source=h.source,
                                    fraud_type=fraud_type_words(h.fraud_type), when=when))


def _script_reason(snap: Snapshot, name: str) -> DecisionReason | None:
    if name == "pay_after_script_12h":
        pay = _first_transfer(snap)
        found = stages(snap.state, pay.ts) if pay else []
        if pay is None or len({st.name for st in found}) < 2:
            return None
        return DecisionReason(code="SCRIPT_THEN_FIRST_TRANSFER",
                              detail=tr("a first transfer of {amount} to a new payee {duration} after {script}",
                                        amount=_yuan(pay.amount_fen), duration=_minutes(pay.ts - found[0].ts),
                                        script=_script_words(found)))
    found = stages(snap.state, snap.now)
    if name.startswith("script_stages"):
        return found and DecisionReason(code="SCAM_SCRIPT_IN_PROGRESS", detail=_script_words(found)) or None
    stage = STAGE_FEATURES[name]
    st = next((st for st in found if st.name == stage), None)
    return st and DecisionReason(code=f"SCRIPT_STAGE_{stage.upper()}", detail=_stage_words(st))


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
        said = (N_("{duration} call from a {number} never in contact before") if c.first_contact
                else N_("{duration} call from a {number}"))
        return DecisionReason(code=code, detail=tr(said, duration=_minutes(c.duration_s * 1000),
                                                   number=_number_words(c)))
    if name == "remote_app_install_24h":
        w = next((w for w in reversed(s.web) if now - DAY_MS <= w.ts <= now and w.kind == "app_install"
                  and w.target in REMOTE_APPS), None)
        return w and DecisionReason(code="REMOTE_APP_INSTALL",
                                    detail=tr("installed {app} (remote meeting or screen sharing)", app=w.target))
    if name in ("first_payee_out_24h", "log_first_payee_amount_24h", "out_transfers_1h"):
        pay = _first_transfer(snap)
        return pay and DecisionReason(code="FIRST_TRANSFER_NEW_PAYEE",
                                      detail=tr("transfer of {amount} initiated to a new payee {payee}",
                                                amount=_yuan(pay.amount_fen), payee=mask(pay.counterparty)))
    if name == "small_in_unknown_24h":
        ins = [p for p in s.payments if now - DAY_MS <= p.ts <= now and p.direction == "in" and p.first_contact
               and p.amount_fen <= 10_000 and p.status == "completed"]
        return ins and DecisionReason(code="SMALL_PAYMENTS_RECEIVED",
                                      detail=tr("{n} small payments received from unknown accounts",
                                                n=len(ins))) or None
    if name == "elderly" and snap.age is not None:
        return DecisionReason(code="ELDERLY", detail=tr("aged {age}", age=snap.age))
    if name == "young" and snap.age is not None:
        return DecisionReason(code="YOUNG", detail=tr("aged {age}", age=snap.age))
    return None


def reasons(snap: Snapshot, contributions: list[float], payee_flagged: bool = False) -> list[DecisionReason]:
    """The reasons behind a score: the features pushing it up most, each told from the facts behind it."""
    out: list[DecisionReason] = []
    if payee_flagged:
        pay = _first_transfer(snap)
        payee = mask(pay.counterparty) if pay else tr("an account")
        out.append(DecisionReason(code="TRANSFER_TO_CASE_ACCOUNT",
                                  detail=tr("transfer initiated to {payee} named in a fraud case", payee=payee)))
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
