"""`yujing explain WARNING_ID`: the audit trail of one warning, from what Kafka holds.

The decision (score, fraud type, reasons, the features scored, model and policy versions), the evidence
events it names, the warning, every dispatch task and stop-payment it caused with the banks' answers, and every
outcome since.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from schemas.catalogue import tr
from schemas.decode import InvalidRecord, decode_input
from schemas.internal import Decision
from schemas.labels import code_words, fraud_type_words
from schemas.masking import shown_counterpart
from schemas.records import is_progress
from schemas.topics import REPLY_TOPIC, SIGNAL_TOPICS
from schemas.units import LOCAL
from scorers.features import FEATURES
from streams.kafka_io import Cluster, read_to_end

TRAIL_TOPICS = ("warnings", "dispatch.sms", "dispatch.phone", "dispatch.visit", "outcomes")


@dataclass
class Trail:
    """Everything recorded about one warning."""

    warning_id: str
    decision: Decision | None = None
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> the signal, with its topic
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # topic -> records naming the warning
    stop_payments: list[dict[str, Any]] = field(default_factory=list)  # of the warning's episode and transfer
    replies: list[dict[str, Any]] = field(default_factory=list)  # the banks' answers to them


def gather(settings: Cluster, warning_id: str) -> Trail:
    """Read the trail of a warning from the topics (a full scan: an audit, not a hot path)."""
    trail = Trail(warning_id)
    for msg in read_to_end(settings, settings.topic("yujing.decisions")):
        if is_progress(msg.key):  # the decider's progress, not a decision
            continue
        d = msgspec.json.decode(msg.value, type=Decision)
        if d.decision_id == warning_id:
            trail.decision = d
            break
    wanted = set(trail.decision.evidence) if trail.decision else set()
    for logical in SIGNAL_TOPICS:
        for msg in read_to_end(settings, settings.topic(logical)) if wanted else []:
            try:
                record = decode_input(logical, msg.value)
            except InvalidRecord:
                continue
            event_id = getattr(record, "event_id", None)
            if event_id in wanted:
                trail.evidence[event_id] = {"topic": logical, **msgspec.to_builtins(record)}
    for logical in TRAIL_TOPICS:
        for msg in read_to_end(settings, settings.topic(logical)):
            doc = _document(msg.value)
            if doc is not None and doc.get("warning_id") == warning_id:
                doc["kafka_offset"] = f"{msg.partition}:{msg.offset}"
                trail.records.setdefault(logical, []).append(doc)
    transfer = trail.decision.transfer if trail.decision else None
    for msg in read_to_end(settings, settings.topic("interception.payment")):
        doc = _document(msg.value)
        if doc is not None and (doc.get("warning_id") == warning_id
                                or (transfer is not None and doc.get("transfer_id") == transfer.transfer_id)):
            trail.stop_payments.append(doc)
    requests = {doc.get("request_id") for doc in trail.stop_payments} - {None}
    for msg in read_to_end(settings, settings.topic(REPLY_TOPIC)) if requests else []:
        doc = _document(msg.value)
        if doc is not None and doc.get("request_id") in requests:
            trail.replies.append(doc)
    return trail


def _document(raw: bytes | None) -> dict[str, Any] | None:
    """A record as a JSON object; None for a tombstone or anything else (`outcomes` comes from outside)."""
    try:
        doc = msgspec.json.decode(raw) if raw is not None else None
    except msgspec.DecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _when(ts: int | None) -> str:
    return datetime.fromtimestamp(ts / 1000, LOCAL).strftime("%Y-%m-%d %H:%M:%S") if ts else "–"


def as_dict(trail: Trail) -> dict[str, Any]:
    """The trail as JSON-ready data."""
    d = trail.decision
    return {"warning_id": trail.warning_id,
            "decision": msgspec.to_builtins(d) if d else None,
            "features": dict(zip(FEATURES, d.features)) if d and len(d.features) == len(FEATURES) else {},
            "evidence": trail.evidence, "missing_evidence": sorted(set(d.evidence) - set(trail.evidence)) if d else [],
            "records": trail.records, "stop_payments": trail.stop_payments, "replies": trail.replies}


def render(trail: Trail) -> str:
    """The trail as text for a supervisor, in the operators' language."""
    d = trail.decision
    if d is None:
        return tr("no decision {warning_id} on yujing.decisions", warning_id=trail.warning_id)
    person = d.subject_id or tr("unregistered {who}", who=shown_counterpart(d.person))
    lines = [tr("warning {warning_id}: {tier} {fraud_type} (p={p}), score {score}", warning_id=trail.warning_id,
                tier=d.tier, fraud_type=fraud_type_words(d.fraud_type), p=f"{d.type_probability:.2f}",
                score=f"{d.score:.3f}"),
             "  " + tr("person {person}; decided at event time {when}; episode since {since}", person=person,
                       when=_when(d.ts), since=_when(d.episode_ts)),
             "  " + tr("model {model}; policy {policy}", model=d.model_version, policy=d.policy_version),
             tr("reasons:")]
    lines += [f"  - {r.code}: {r.detail}" for r in d.reasons]
    lines.append(tr("evidence:"))
    for event_id in d.evidence:
        e = trail.evidence.get(event_id)
        lines.append(f"  - {event_id}: " + (tr("{topic} at {when}", topic=e["topic"], when=_when(e.get("ts"))) if e
                                            else tr("(an indicator hit or control: not a signal)")))
    if d.features and len(d.features) == len(FEATURES):
        lines.append(tr("features scored (non-zero):"))
        lines += [f"  {name:<32}{value:.3f}" for name, value in zip(FEATURES, d.features) if value]
    for topic in TRAIL_TOPICS:
        for doc in trail.records.get(topic, []):
            what = doc.get("outcome") or doc.get("tier") or ""
            ident = doc.get("task_id") or doc.get("message_id") or ""
            lines.append(f"{topic:<15}{_when(doc.get('ts'))}  {what} {ident}".rstrip())
    for s in trail.stop_payments:
        lines.append(f"{'interception.payment':<15}{_when(s.get('ts'))}  " + tr(
            "stop-payment of transfer {transfer_id}, {amount} (request {request_id})", transfer_id=s["transfer_id"],
            amount=f"¥{s['amount_fen'] / 100:,.2f}", request_id=s.get("request_id") or "–"))
    for r in trail.replies:
        lines.append(f"{REPLY_TOPIC:<15}{_when(r.get('ts'))}  " + tr(
            "{bank} answered {reply} (request {request_id})", bank=r.get("bank", ""),
            reply=code_words().get(r.get("reply", ""), r.get("reply", "")), request_id=r.get("request_id", "")))
    return "\n".join(lines)
