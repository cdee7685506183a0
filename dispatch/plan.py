"""Planning: a decision and its route to the contract's warning, dispatch tasks and stop-payment request (pure).

Ids are derived from the warning id, so planning the same decision again after a crash yields the same
`message_id` and `task_id`s, and the SMS gateway and task feeds can deduplicate.
"""
from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dispatch.routing import Route, StopPaymentTerms
from schemas.catalogue import tr
from schemas.internal import Decision
from schemas.labels import fraud_type_words
from schemas.records import FraudWarning, PaymentInterception, PhoneTask, Reason, SmsTask, Subject, VisitTask
from schemas.units import HOUR_MS
from streams.person_state import episode_warning_id

TEMPLATES_FILE = Path(__file__).parent / "config" / "templates.toml"
TZ_OFFSET_MS = 8 * HOUR_MS  # the city's local time, UTC+8
QUIET_FROM, QUIET_UNTIL = 22, 8  # no reminder SMS between 22:00 and 08:00 local time


@lru_cache(maxsize=1)
def templates(path: Path = TEMPLATES_FILE) -> dict:
    """The SMS texts and phone scripts per fraud type."""
    return tomllib.loads(path.read_text())


def sms_text(fraud_type: str) -> str:
    """The reminder text for a fraud type (the generic one when the type has none)."""
    t = templates()
    return t["sms"].get(fraud_type, t["sms"]["unknown"]).format(hotline=t["hotline"])


def phone_script(fraud_type: str) -> str:
    """What a caller should say for a fraud type."""
    t = templates()
    return t["script"].get(fraud_type, t["script"]["unknown"])


def not_before(ts: int, quiet: bool) -> int:
    """The earliest time a message may go out: the next 08:00 local time when `ts` falls in quiet hours."""
    if not quiet:
        return ts
    local = ts + TZ_OFFSET_MS
    hour = (local // HOUR_MS) % 24
    if QUIET_UNTIL <= hour < QUIET_FROM:
        return ts
    day_start = local - local % (24 * HOUR_MS)
    morning = day_start + QUIET_UNTIL * HOUR_MS + (24 * HOUR_MS if hour >= QUIET_FROM else 0)
    return morning - TZ_OFFSET_MS


def _id(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:24]


def step_id(warning_id: str, channel: str, step: int) -> str:
    """The `message_id` or `task_id` of step `step` of a warning's route on `channel`."""
    return _id(warning_id, channel, str(step))


@dataclass(frozen=True)
class Recipient:
    """Who is warned, and where: the person's line, grid, station and masked name."""

    subject_id: str
    phone: str | None
    grid_id: str
    station_id: str
    name_masked: str


def recipient(decision: Decision, profile: Subject | None, default_station: str) -> Recipient:
    """The recipient of a decision: from the registry, or the bare line or account when unregistered."""
    if profile is not None:
        return Recipient(profile.subject_id, profile.phones[0] if profile.phones else None, profile.grid_id,
                         profile.station_id, profile.name_masked)
    line = decision.person if decision.person.startswith("+") else None
    return Recipient(decision.person, line, "UNASSIGNED", default_station, "未登记")


@dataclass
class Plan:
    """Everything one warning sends now: the warning, the tasks of the steps due now, a stop-payment request."""

    warning: FraudWarning | None  # None for a later step of an escalation (the warning went out already)
    sms: list[SmsTask] = field(default_factory=list)
    phone: list[PhoneTask] = field(default_factory=list)
    visit: list[VisitTask] = field(default_factory=list)
    stop_payment: PaymentInterception | None = None


def plan_step(decision: Decision, route: Route, who: Recipient, step_index: int, plan: Plan) -> None:
    """Add the task of one step of the route to the plan (escalation calls this for the later steps)."""
    step = route.steps[step_index]
    due = decision.ts + step.within_ms
    base = {"warning_id": decision.decision_id, "tier": decision.tier, "fraud_type": decision.fraud_type,
            "ts": decision.ts}
    if step.channel == "sms" and who.phone:
        start = not_before(decision.ts, route.quiet_hours)
        plan.sms.append(SmsTask(**base, message_id=step_id(decision.decision_id, "sms", step_index), to=who.phone,
                                text=sms_text(decision.fraud_type), not_before_ts=start,
                                expires_ts=max(due, start + HOUR_MS)))
    elif step.channel == "phone" and who.phone:
        plan.phone.append(PhoneTask(**base, task_id=step_id(decision.decision_id, "phone", step_index),
                                    subject_id=who.subject_id, phone=who.phone, station_id=who.station_id,
                                    script=phone_script(decision.fraud_type), respond_by_ts=due))
    elif step.channel == "visit" or not who.phone:
        # nobody to text or call (an unregistered account): the station looks for the person instead
        plan.visit.append(VisitTask(**base, task_id=step_id(decision.decision_id, "visit", step_index),
                                    subject_id=who.subject_id, grid_id=who.grid_id, station_id=who.station_id,
                                    name_masked=who.name_masked, respond_by_ts=due))


def plan_warning(decision: Decision, route: Route, who: Recipient) -> Plan:
    """The warning for a decision that raised a tier, with the tasks of the steps due now."""
    warning = FraudWarning(warning_id=decision.decision_id, subject_id=who.subject_id, tier=decision.tier,
                      fraud_type=decision.fraud_type, score=decision.score,  # type: ignore[arg-type]
                      reasons=[Reason(code=r.code, detail=r.detail) for r in decision.reasons],
                      evidence=decision.evidence, channels=[s.channel for s in route.steps],  # type: ignore[misc]
                      ts=decision.ts, respond_by_ts=decision.ts + route.steps[0].within_ms,
                      model_version=decision.model_version, policy_version=decision.policy_version)
    plan = Plan(warning)
    for i in range(len(route.steps) if route.mode == "all" else 1):
        plan_step(decision, route, who, i, plan)
    return plan


def stop_payment(decision: Decision, who: Recipient, terms: StopPaymentTerms) -> PaymentInterception | None:
    """The stop-payment request of a T1 decision with a transfer under way: one per transfer (asked again, the
    same request id), linked to its episode's warning, with what a bank needs to act on it."""
    t = decision.transfer
    if t is None:
        return None
    why = tr("; ").join(r.detail for r in decision.reasons[:2])
    warning_id = (decision.decision_id if decision.rose
                  else episode_warning_id(decision.person, decision.episode_ts, decision.tier))
    return PaymentInterception(transfer_id=t.transfer_id, payer_account=t.payer_account, payee_account=t.payee_account,
                               amount_fen=t.amount_fen, ts=t.ts,
                               reason=tr("T1 {fraud_type}: {why}", fraud_type=fraud_type_words(decision.fraud_type),
                                         why=why)[:500],
                               request_id="sp-" + _id("stop-payment", t.transfer_id), warning_id=warning_id,
                               payee_bank=t.payee_bank or None, payer_bank=t.payer_bank or None,
                               requesting_unit=terms.requesting_unit, station_id=who.station_id,
                               legal_basis=terms.legal_basis, case_refs=list(t.case_refs),
                               expires_ts=t.ts + terms.hold_ms)
