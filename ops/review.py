"""The analysts' review page and API: the held decisions, masked, with their reasons and features, and a verdict."""
from __future__ import annotations

import html
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote

import msgspec

from dispatch.review import Held
from schemas.catalogue import N_, language, tr
from schemas.internal import Assessment
from schemas.labels import fraud_type_words
from schemas.units import LOCAL
from scorers.features import FEATURES

ACTIONS = {"confirm": N_("confirm"), "dismiss": N_("dismiss"), "raise": N_("raise")}
HTML_LANG = {"zh": "zh-CN", "en": "en"}


class VerdictError(ValueError):
    """An assessment the API refuses; the message says what is missing or wrong."""


def review_entry(held: Held, clock: int, lang: str | None = None) -> dict[str, Any]:
    """A held decision as an analyst reads it: the person masked, the reasons, the non-zero features, the deadline."""
    d, who = held.context.decision, held.context.who
    features = dict(zip(FEATURES, d.features)) if len(d.features) == len(FEATURES) else {}
    return {"decision_id": d.decision_id, "tier": d.tier, "fraud_type": d.fraud_type,
            "fraud_type_words": fraud_type_words(d.fraud_type, lang), "score": round(d.score, 3),
            "name": who.get("name_masked", ""), "grid": who.get("grid_id", ""), "station": who.get("station_id", ""),
            "reasons": [r.detail for r in d.reasons], "evidence": len(d.evidence),
            "features": {name: round(value, 3) for name, value in features.items() if value},
            "rule": held.rule, "route": held.context.route, "ts": d.ts, "deadline": held.deadline,
            "minutes_left": max(0, held.deadline - clock) // 60_000 if clock else None,
            "held_wall_ms": held.held_wall_ms}


def verdict(decision_id: str, form: Mapping[str, Any], analyst: str, now_ms: int) -> Assessment:
    """The assessment an analyst's form or JSON body asks for; refused with a reason when incomplete."""
    action = str(form.get("action", ""))
    if action not in ACTIONS:
        raise VerdictError(tr("action must be confirm, dismiss or raise"))
    reason = str(form.get("reason", "")).strip()
    if action == "dismiss" and not reason:
        raise VerdictError(tr("a dismissal needs a reason: it is the false alarm's label"))
    tier = form.get("tier") if action == "raise" else None
    if action == "raise" and tier not in ("T1", "T2"):
        raise VerdictError(tr("raise needs a tier, T1 or T2"))
    try:
        return msgspec.convert({"decision_id": decision_id, "action": action, "analyst": analyst, "ts": now_ms,
                                "reason": reason, "tier": tier}, Assessment)
    except msgspec.ValidationError as exc:
        raise VerdictError(str(exc)) from None


def review_page(entries: list[dict[str, Any]], clock: int, notice: str = "", lang: str | None = None) -> str:
    """The queue, earliest deadline first, each decision with one-key confirm, dismiss (with a reason) and raise."""
    lang = lang or language()

    def t(msgid: str, **kw: Any) -> str:
        return html.escape(tr(msgid, lang, **kw))

    title, empty = t(N_("yujing · quick assessment")), t(N_("no decision is waiting for review"))
    when = datetime.fromtimestamp(clock / 1000, LOCAL).strftime("%Y-%m-%d %H:%M") if clock else "–"
    status = t(N_("pipeline clock {clock} · {count} waiting"), clock=when, count=len(entries))
    console, refresh = t(N_("console")), t(N_("refresh"))
    rows = "".join(_row(e, t) for e in entries) or f'<tr><td colspan="8" id="empty">{empty}</td></tr>'
    shown = f'<p id="notice">{html.escape(notice)}</p>' if notice else ""
    heads = "".join(f"<th>{t(h)}</th>" for h in (N_("deadline"), N_("tier"), N_("fraud type"), N_("person"),
                                                   N_("grid / station"), N_("reasons"), N_("features"),
                                                   N_("assessment")))
    return (f'<!doctype html><html lang="{HTML_LANG[lang]}"><head><meta charset="utf-8"><title>{title}</title>'
            f'<style>{STYLE}</style></head><body><h1>{title}</h1><p>{status} · <a href="/console">{console}</a> · '
            f'<a href="/console/review">{refresh}</a></p>{shown}'
            f'<table id="queue"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table></body></html>')


STYLE = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
         "padding:4px;vertical-align:top}form{display:inline-block;margin:2px}.T1{color:#b00}.T2{color:#c60}"
         "#notice{background:#eef;padding:4px}")


def _row(e: dict[str, Any], t: Any) -> str:
    wid = html.escape(e["decision_id"])
    action = f'/console/review/{html.escape(quote(e["decision_id"], safe=""))}'
    deadline = datetime.fromtimestamp(e["deadline"] / 1000, LOCAL).strftime("%m-%d %H:%M")
    left = "" if e["minutes_left"] is None else t(N_("{minutes} min left"), minutes=e["minutes_left"])
    reasons = "<br>".join(html.escape(r) for r in e["reasons"][:5])
    features = "<br>".join(f"{html.escape(k)} {v}" for k, v in list(e["features"].items())[:8])
    explain_words, why = t(N_("explain")), t(N_("why (the false alarm label)"))
    explain = f'<a href="/console/explain/{html.escape(quote(e["decision_id"], safe=""))}">{explain_words}</a>'

    def form(act: str, extra: str) -> str:
        return (f'<form method="post" action="{action}"><input type="hidden" name="action" value="{act}">{extra}'
                f'<button class="{act}">{t(ACTIONS[act])}</button></form>')

    dismiss = f'<input name="reason" required placeholder="{why}">'
    raise_ = '<select name="tier"><option>T2</option><option>T1</option></select>'
    verdicts = form("confirm", "") + form("dismiss", dismiss) + (form("raise", raise_) if e["tier"] != "T1" else "")
    return (f'<tr data-id="{wid}"><td>{deadline}<br>{left}</td><td class="{e["tier"]}">{e["tier"]}</td>'
            f'<td>{html.escape(e["fraud_type_words"])}<br>{e["score"]}</td><td>{html.escape(e["name"])}<br>'
            f'<small>{wid}</small></td><td>{html.escape(e["grid"])}<br>{html.escape(e["station"])}</td>'
            f'<td>{reasons}</td><td><small>{features}</small></td><td>{verdicts} {explain}</td></tr>')
