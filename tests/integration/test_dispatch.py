"""Dispatch on the real broker and Redis: a T3 → one SMS; inside the cooldown → none; a rise to T1 → phone and
visit tasks plus a stop-payment request; a redelivered decision → the same ids again, nothing new."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from dispatch.plan import sms_text
from schemas.internal import Decision, DecisionReason, TransferRef
from schemas.records import FraudWarning, Outcome, PaymentInterception, PhoneTask, SmsTask, VisitTask
from streams.kafka_io import consume, produce
from tests.integration.scenario import HOUR, T, load_registry

REASON = [DecisionReason(code="CASE_ELEMENT_CONTACT", detail="contact with phone +8617000001111 named in case-1")]


def decision(decision_id: str, tier: str, ts: int, transfer: TransferRef | None = None, rose: bool = True) -> tuple[bytes, bytes]:
    d = Decision(decision_id=decision_id, person="S_ALICE", subject_id="S_ALICE", tier=tier, rose=rose,  # type: ignore[arg-type]
                 fraud_type="fake_customer_service", type_probability=0.7, score=0.4, reasons=REASON,
                 evidence=["alice-call"], ts=ts, episode_ts=ts, model_version="m1", policy_version="p1",
                 transfer=transfer)
    return b"S_ALICE", msgspec.json.encode(d)


def _read(settings: Settings, topic: str, kind: type, expect: int) -> list:
    return [msgspec.json.decode(m.value, type=kind) for m in consume(settings, topic, expect, timeout=45, linger=3)]


def test_t3_sms_cooldown_then_t1_phone_visit_and_stop_payment(isolated: Settings, worker: WorkerProcess) -> None:
    load_registry(isolated)
    transfer = TransferRef(transfer_id="TR-9", payer_account="6222000000000001", payee_account="6217000011112222",
                           amount_fen=880_000, ts=T + 2 * HOUR)
    produce(isolated, "yujing.decisions", [
        decision("w-t3", "T3", T),                      # a reminder
        decision("w-t3-again", "T3", T + HOUR),         # more evidence, another id, inside the cooldown
        decision("w-t3", "T3", T),                      # the first one redelivered after a crash
        decision("w-t1", "T1", T + 2 * HOUR, transfer),  # the rise: money is moving
    ])
    warnings = _read(isolated, "warnings", FraudWarning, expect=3)
    sms = _read(isolated, "dispatch.sms", SmsTask, expect=2)
    phone = _read(isolated, "dispatch.phone", PhoneTask, expect=1)
    visit = _read(isolated, "dispatch.visit", VisitTask, expect=1)
    stops = _read(isolated, "interception.payment", PaymentInterception, expect=1)

    assert sorted({w.warning_id for w in warnings}) == ["w-t1", "w-t3"], worker.log_tail()
    assert {m.message_id for m in sms} == {sms[0].message_id} and len({m.warning_id for m in sms}) == 1
    first = sms[0]
    assert first.to == "+8613800000001" and first.text == sms_text("fake_customer_service") and "96110" in first.text
    assert first.not_before_ts >= T and first.expires_ts > first.not_before_ts
    assert [(p.warning_id, p.station_id, p.phone, p.respond_by_ts) for p in phone] == [
        ("w-t1", "ST0", "+8613800000001", T + 2 * HOUR + 5 * 60_000)]
    assert [(v.warning_id, v.grid_id, v.name_masked) for v in visit] == [("w-t1", "G0000", "王*")]
    assert [(s.transfer_id, s.amount_fen, s.payer_account) for s in stops] == [("TR-9", 880_000, "6222000000000001")]
    t1 = next(w for w in warnings if w.warning_id == "w-t1")
    assert (t1.tier, t1.channels, t1.respond_by_ts) == ("T1", ["phone", "visit"], T + 2 * HOUR + 5 * 60_000)
    assert t1.reasons[0].code == "CASE_ELEMENT_CONTACT" and t1.subject_id == "S_ALICE"
    assert consume(isolated, "deadletter", expect=0, linger=1) == []

    # the audit trail of the T1 warning, from Kafka alone
    env = {**os.environ, **isolated.to_env()}
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "explain", "w-t1", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    trail = json.loads(out)
    assert trail["decision"]["tier"] == "T1" and trail["decision"]["model_version"] == "m1"
    assert sorted(trail["records"]) == ["dispatch.phone", "dispatch.visit", "warnings"]
    assert [s["transfer_id"] for s in trail["stop_payments"]] == ["TR-9"]
    assert trail["missing_evidence"] == ["alice-call"]  # named by the decision, never fed as a signal here
    text = subprocess.run([sys.executable, "-m", "deploy.cli", "explain", "w-t1"], env=env, check=True,
                          capture_output=True, text=True, timeout=120).stdout
    assert "CASE_ELEMENT_CONTACT" in text and "紧急止付 转账 TR-9，¥8,800.00" in text

    # the day's bulletin, from Kafka alone (T + 2 h is 2025-12-05 14:00 local)
    bulletin = subprocess.run([sys.executable, "-m", "deploy.cli", "bulletin", "--date", "2025-12-05"], env=env,
                              check=True, capture_output=True, text=True, timeout=120).stdout
    for row in ("| 处置预警指令 | 2 |", "| 电话劝阻 | 1 |", "| 上门劝阻 | 1 |",
                "| 紧急止付请求 | 1 (¥8,800.00) |", "| 短信送达 / 排队 | 0 / 1 |"):
        assert row in bulletin, bulletin


def _person_decision(person: str, decision_id: str, ts: int) -> tuple[bytes, bytes]:
    d = Decision(decision_id=decision_id, person=person, subject_id=person, tier="T3", rose=True,
                 fraud_type="rebate_task", type_probability=0.6, score=0.5, reasons=REASON, evidence=["e"], ts=ts,
                 episode_ts=ts, model_version="m1", policy_version="p1")
    return person.encode(), msgspec.json.encode(d)


def test_failed_step_escalates_at_once_and_a_missed_deadline_in_event_time(isolated: Settings,
                                                                          worker: WorkerProcess) -> None:
    from deploy.redis_client import connect_sync
    from dispatch.escalation import breaches_key

    load_registry(isolated)
    produce(isolated, "yujing.decisions", [_person_decision("S_ALICE", "w-a", T), _person_decision("S_BOB", "w-b", T)])
    assert len(_read(isolated, "dispatch.sms", SmsTask, expect=2)) == 2
    # Alice's SMS could not be delivered: she gets a call now. Bob's is delivered... or not: no word at all.
    failed = Outcome(warning_id="w-a", channel="sms", outcome="sms_failed", ts=T + 10 * 60_000, note="test")
    produce(isolated, "outcomes", [(b"w-a", msgspec.json.encode(failed))])
    phone = _read(isolated, "dispatch.phone", PhoneTask, expect=1)
    assert [(p.warning_id, p.respond_by_ts) for p in phone] == [("w-a", T + 48 * HOUR)], worker.log_tail()
    # A day and an hour later (event time), Carol's warning moves the clock past Bob's deadline.
    produce(isolated, "yujing.decisions", [_person_decision("S_CAROL", "w-c", T + 25 * HOUR)])
    phone = _read(isolated, "dispatch.phone", PhoneTask, expect=2)
    assert sorted(p.warning_id for p in phone) == ["w-a", "w-b"]
    assert len(_read(isolated, "dispatch.sms", SmsTask, expect=3)) == 3
    breaches = connect_sync(isolated.redis_url, **isolated.redis_options()).get(breaches_key(isolated.redis_prefix))
    assert breaches == b"1"  # Bob's SMS step; Alice's failed step escalated before its deadline
