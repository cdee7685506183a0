"""`yujing bulletin --date D [--days N]`: the figures a city bureau reports for a day or a period, from Kafka.

Warning instructions handled, SMS sent, calls, visits, domains and numbers blocked, stop-payments and their
amounts, people dissuaded, amounts reported saved, and the success rate by station; Markdown and HTML with a
chart. Days are local days (UTC+8) of the records' event time.
"""
from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from schemas.catalogue import tr
from schemas.decode import InvalidRecord, decode_typed
from schemas.records import (
    AccountInterception,
    BankReply,
    DomainInterception,
    FraudWarning,
    NumberInterception,
    Outcome,
    PaymentInterception,
    PhoneTask,
    SmsTask,
    VisitTask,
)
from schemas.topics import REPLY_TOPIC
from schemas.units import LOCAL
from streams.kafka_io import Cluster, read_to_end

TOPIC_TYPES: dict[str, type[msgspec.Struct]] = {
    "warnings": FraudWarning, "dispatch.sms": SmsTask, "dispatch.phone": PhoneTask, "dispatch.visit": VisitTask,
    "interception.payment": PaymentInterception, "interception.domain": DomainInterception,
    "interception.number": NumberInterception, "interception.account": AccountInterception, "outcomes": Outcome,
    REPLY_TOPIC: BankReply}
TOPICS = tuple(TOPIC_TYPES)


def _in_period(ts: int, start: date, days: int) -> bool:
    day = datetime.fromtimestamp(ts / 1000, LOCAL).date()
    return start <= day < start + timedelta(days=days)


def figures(records: dict[str, list[dict[str, Any]]], start: date, days: int) -> dict[str, Any]:
    """The bulletin's figures from the period's records (pure; de-duplicated by their ids)."""
    def unique(topic: str, key: str) -> dict[str, dict[str, Any]]:
        return {r[key]: r for r in records.get(topic, []) if key in r and _in_period(int(r.get("ts", 0)), start, days)}

    def in_period(topic: str) -> list[dict[str, Any]]:
        return [r for r in records.get(topic, []) if _in_period(int(r.get("ts", 0)), start, days)]

    warnings = unique("warnings", "warning_id")
    phone, visit = unique("dispatch.phone", "task_id"), unique("dispatch.visit", "task_id")
    stops = unique("interception.payment", "transfer_id")
    # a bank's latest answer to each request answered within the period
    answers = {r["request_id"]: r for r in sorted(in_period(REPLY_TOPIC), key=lambda r: int(r["ts"]))}
    answered = Counter(r["reply"] for r in answers.values())
    outcomes = [o for o in records.get("outcomes", []) if _in_period(int(o.get("ts", 0)), start, days)]
    station_of = {t["task_id"]: t["station_id"] for t in list(phone.values()) + list(visit.values())}
    by_station: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        if o.get("task_id") in station_of:
            by_station[station_of[o["task_id"]]][o["outcome"]] += 1
    closed = ("dissuaded", "already_lost", "false_alarm", "visited", "call_answered")
    return {
        "period": f"{start.isoformat()}" + (f" – {(start + timedelta(days=days - 1)).isoformat()}" if days > 1 else ""),
        "warnings": len(warnings), "warnings_by_tier": dict(sorted(Counter(w["tier"] for w in warnings.values()).items())),
        "sms_sent": sum(1 for o in outcomes if o.get("outcome") == "sms_delivered"),
        "sms_queued": len(unique("dispatch.sms", "message_id")),
        "calls": len(phone), "visits": len(visit),
        "domains_blocked": len(unique("interception.domain", "domain")),
        "numbers_blocked": len({r["number"] for r in unique("interception.number", "number").values()
                                if r.get("action") == "block"}),
        "accounts_controlled": len(unique("interception.account", "account")),
        "stop_payments": len(stops), "stop_payment_fen": sum(int(s.get("amount_fen", 0)) for s in stops.values()),
        "stops_held": answered["held"], "stops_too_late": answered["too_late"], "stops_refused": answered["refused"],
        "held_fen": sum(int(r.get("held_fen") or 0) for r in answers.values() if r["reply"] == "held"),
        "dissuaded": sum(1 for o in outcomes if o.get("outcome") == "dissuaded"),
        "already_lost": sum(1 for o in outcomes if o.get("outcome") == "already_lost"),
        "false_alarms": sum(1 for o in outcomes if o.get("outcome") == "false_alarm"),
        "saved_fen": sum(int(o.get("amount_saved_fen") or 0) for o in outcomes),
        "stations": {st: {"closed": sum(c[k] for k in closed), "dissuaded": c["dissuaded"],
                          "success": round(c["dissuaded"] / max(1, sum(c[k] for k in closed)), 3)}
                     for st, c in sorted(by_station.items())},
    }


def parse_records(values: dict[str, list[bytes | None]]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The records of each topic that fit its schema, and how many did not (a tombstone, bad JSON, a wrong field):
    those are left out of the figures and counted, never the end of the bulletin."""
    out: dict[str, list[dict[str, Any]]] = {}
    left_out = 0
    for topic, raws in values.items():
        out[topic] = []
        for raw in raws:
            try:
                out[topic].append(msgspec.to_builtins(decode_typed(TOPIC_TYPES[topic], raw)))
            except InvalidRecord:
                left_out += 1
    return out, left_out


def read_records(settings: Cluster) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every record of the bulletin's topics that fits its schema, and how many were left out."""
    return parse_records({topic: [m.value for m in read_to_end(settings, settings.topic(topic))]
                          for topic in TOPICS})


def markdown(f: dict[str, Any]) -> str:
    """The bulletin as Markdown."""
    yuan = lambda fen: f"¥{fen / 100:,.2f}"  # noqa: E731
    rows = [(tr("Warning instructions handled"), f["warnings"]),
            (tr("  by tier"), ", ".join(f"{k} {v}" for k, v in f["warnings_by_tier"].items()) or "–"),
            (tr("SMS sent (delivered) / queued"), f"{f['sms_sent']} / {f['sms_queued']}"),
            (tr("Calls"), f["calls"]), (tr("Visits"), f["visits"]),
            (tr("Domains blocked"), f["domains_blocked"]), (tr("Numbers blocked"), f["numbers_blocked"]),
            (tr("Accounts under control"), f["accounts_controlled"]),
            (tr("Stop-payment requests"), f"{f['stop_payments']} ({yuan(f['stop_payment_fen'])})"),
            (tr("  banks' answers: held / too late / refused"),
             f"{f['stops_held']} / {f['stops_too_late']} / {f['stops_refused']} ({yuan(f['held_fen'])})"),
            (tr("People dissuaded"), f["dissuaded"]), (tr("Already lost"), f["already_lost"]),
            (tr("False alarms"), f["false_alarms"]), (tr("Losses avoided (reported)"), yuan(f["saved_fen"]))]
    if f.get("left_out"):
        rows.append((tr("Malformed records left out (see the topics)"), f["left_out"]))
    figure_head = " | ".join((tr("figure"), tr("value")))
    station_head = " | ".join((tr("station"), tr("closed"), tr("dissuaded"), tr("success")))
    lines = [tr("# Anti-fraud early warning bulletin, {period}", period=f["period"]), "",
             f"| {figure_head} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", tr("## Success rate by station (dissuaded of closed calls and visits)"), "",
              f"| {station_head} |", "|---|---|---|---|"]
    lines += [f"| {st} | {s['closed']} | {s['dissuaded']} | {s['success']:.0%} |" for st, s in f["stations"].items()]
    return "\n".join(lines) + "\n"


def chart_png(f: dict[str, Any]) -> bytes:
    """A bar chart of the day's actions (labels in English: the machine has no CJK font for matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["warnings", "SMS", "calls", "visits", "stop-payments", "dissuaded"]
    values = [f["warnings"], f["sms_sent"], f["calls"], f["visits"], f["stop_payments"], f["dissuaded"]]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(labels, values, color="#2a6f97")
    ax.set_title(f"Actions, {f['period']}")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write(f: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write bulletin.md and bulletin.html (with the chart inlined) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    md = markdown(f)
    (folder / "bulletin.md").write_text(md, encoding="utf-8")
    png = base64.b64encode(chart_png(f)).decode()
    body = "<pre>" + html.escape(md) + "</pre>"
    (folder / "bulletin.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>bulletin {html.escape(f['period'])}</title>{body}"
        f"<img alt='actions' src='data:image/png;base64,{png}'>", encoding="utf-8")
    return folder / "bulletin.md", folder / "bulletin.html"
