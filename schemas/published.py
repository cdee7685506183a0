"""The contract as other teams validate against it: a JSON Schema per topic and an AsyncAPI document of them all.

Generated from the types the pipeline itself decodes and encodes (`schemas/records.py`, `schemas/internal.py`),
so what is published is what is enforced. `yujing schemas --out DIR` writes them (`write_published`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from schemas.internal import Assessment, Decision, SmsSent, Trigger
from schemas.records import (
    AccountInterception,
    BankReply,
    DeadLetter,
    DomainInterception,
    DomainSignal,
    FraudWarning,
    Indicator,
    NumberInterception,
    Outcome,
    PaymentInterception,
    PaymentSignal,
    PhoneTask,
    Progress,
    SmsTask,
    Subject,
    TelecomSignal,
    VisitTask,
)


class TopicSpec(NamedTuple):
    """One published topic: its record type, its key, who writes it, and other records it may hold."""

    record: type[msgspec.Struct]
    key: str
    writers: str
    internal: bool = False
    also: tuple[type[msgspec.Struct], ...] = ()

    def types(self) -> list[type[msgspec.Struct]]:
        """Every record type the topic holds."""
        return [self.record, *self.also]


PROGRESS = (Progress,)  # a progress record (keyed `progress:<producer>`): a provider's, or the decider's


TOPICS: dict[str, TopicSpec] = {
    "signals.telecom": TopicSpec(TelecomSignal, "subscriber", "telecom operators", also=PROGRESS),
    "signals.payment": TopicSpec(PaymentSignal, "payer_account", "banks through the police-bank platform",
                                 also=PROGRESS),
    "signals.domain": TopicSpec(DomainSignal, "subscriber", "the network regulator", also=PROGRESS),
    "intel.indicators": TopicSpec(Indicator, "type:value (compacted)", "case handlers", also=PROGRESS),
    "registry.subjects": TopicSpec(Subject, "subject_id (compacted; a null value erases the person)",
                                   "the real-name registry"),
    "warnings": TopicSpec(FraudWarning, "subject_id", "yujing"),
    "dispatch.sms": TopicSpec(SmsTask, "to", "yujing"),
    "dispatch.phone": TopicSpec(PhoneTask, "station_id", "yujing"),
    "dispatch.visit": TopicSpec(VisitTask, "grid_id", "yujing"),
    "interception.payment": TopicSpec(PaymentInterception, "transfer_id", "yujing"),
    "interception.account": TopicSpec(AccountInterception, "account", "yujing"),
    "interception.domain": TopicSpec(DomainInterception, "domain", "yujing"),
    "interception.number": TopicSpec(NumberInterception, "number", "yujing"),
    "interception.replies": TopicSpec(BankReply, "request_id", "banks through the police-bank platform"),
    "outcomes": TopicSpec(Outcome, "warning_id", "the SMS gateway, the task feed, field reports"),
    "deadletter": TopicSpec(DeadLetter, "the rejected record's key", "yujing"),
    "yujing.decisions": TopicSpec(Decision, "person (progress:yujing-decider: the decider's progress)", "yujing",
                                  internal=True, also=PROGRESS),
    "yujing.triggers": TopicSpec(Trigger, "person", "yujing", internal=True),
    "yujing.sms-sent": TopicSpec(SmsSent, "message_id (compacted)", "yujing's SMS adapter", internal=True),
    "yujing.assessments": TopicSpec(Assessment, "decision_id", "analysts (yujing review)", internal=True),
    "yujing.shadow-decisions": TopicSpec(Decision, "person", "yujing shadow (a candidate model)", internal=True),
}
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema of one topic's record (draft 2020-12, definitions under `$defs`)."""
    spec = TOPICS[topic]
    refs, defs = msgspec.json.schema_components(spec.types())
    root = refs[0] if len(refs) == 1 else {"anyOf": list(refs)}
    return {"$schema": DIALECT, "$id": f"{topic}.schema.json", "title": topic,
            "description": f"key: {spec.key}; written by {spec.writers}", **root, "$defs": defs}


def asyncapi(version: str) -> dict[str, Any]:
    """An AsyncAPI 2.6 document: every topic as a channel, its key, and its record's schema (in `components`)."""
    types = list(dict.fromkeys(t for spec in TOPICS.values() for t in spec.types()))
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref = dict(zip(types, refs))  # each a {"$ref": …}
    channels: dict[str, Any] = {}
    for topic, spec in TOPICS.items():
        operation = "subscribe" if spec.writers == "yujing" else "publish"  # as a client of yujing sees it
        message = {"name": spec.record.__name__, "contentType": "application/json", "payload": ref[spec.record]}
        messages = {"oneOf": [message, *({"name": t.__name__, "contentType": "application/json",
                                          "payload": ref[t]} for t in spec.also)]} if spec.also else message
        channels[topic] = {
            "description": f"key: {spec.key}; written by {spec.writers}" + ("; internal" if spec.internal else ""),
            "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}}},
            operation: {"message": messages},
        }
    return {"asyncapi": "2.6.0", "id": "urn:yujing:contract",
            "info": {"title": "yujing: telecom and online fraud early warning", "version": version,
                     "description": "The topics yujing reads and writes (CONTRACT.md). One JSON object per "
                                    "message value, UTF-8; ts in ms since the epoch (UTC); money in fen."},
            "defaultContentType": "application/json", "channels": channels,
            "components": {"schemas": components}}


def write_published(out: Path, version: str) -> list[Path]:
    """Write `<topic>.schema.json` for every topic and `asyncapi.json` into `out`; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in TOPICS:
        path = out / f"{topic}.schema.json"
        path.write_text(json.dumps(json_schema(topic), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    path = out / "asyncapi.json"
    path.write_text(json.dumps(asyncapi(version), indent=2, ensure_ascii=False) + "\n")
    return [*written, path]
