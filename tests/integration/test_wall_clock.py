"""The SMS adapter and the task feed in their default mode, on the wall clock, end to end: warnings of a moment
ago through a worker, an SMS delivered by the adapter and its receipt ending the step, a call task claimed and
reported through the feed, every receipt and report stamped with the time it happened."""
from __future__ import annotations

import os
import time

import msgspec

from deploy.config import Settings
from deploy.redis_client import connect_sync
from deploy.workers import WorkerProcess
from dispatch.escalation import escalation_prefix
from dispatch.plan import QUIET_FROM, QUIET_UNTIL, TZ_OFFSET_MS, step_id
from schemas.internal import Decision, DecisionReason, TransferRef
from schemas.records import Outcome
from schemas.units import HOUR_MS, MINUTE_MS
from streams.kafka_io import produce, read_to_end
from tests.integration.harness import Feed, cli_process, feed_token, free_port, wait_http
from tests.integration.scenario import load_registry, wait_for

REASON = [DecisionReason(code="CASE_ELEMENT_CONTACT", detail="contact with a number named in case-1")]


def a_moment_ago(now_ms: int) -> int:
    """A minute ago, or, when that is in the city's quiet hours, the last minute before they began: an SMS of
    that moment is due now and has a day to go before it expires."""
    ts = now_ms - MINUTE_MS
    local_hour = ((ts + TZ_OFFSET_MS) // HOUR_MS) % 24
    if QUIET_UNTIL <= local_hour < QUIET_FROM:
        return ts
    local = ts + TZ_OFFSET_MS
    evening = local - local % (24 * HOUR_MS) + QUIET_FROM * HOUR_MS - MINUTE_MS
    if evening > local:
        evening -= 24 * HOUR_MS
    return evening - TZ_OFFSET_MS


def _decision(decision_id: str, subject: str, tier: str, ts: int, transfer: TransferRef | None = None) -> tuple[bytes, bytes]:
    d = Decision(decision_id=decision_id, person=subject, subject_id=subject, tier=tier, rose=True,  # type: ignore[arg-type]
                 fraud_type="fake_customer_service", type_probability=0.7, score=0.6, reasons=REASON,
                 evidence=[f"{decision_id}-call"], ts=ts, episode_ts=ts, model_version="m1", policy_version="p1",
                 transfer=transfer)
    return subject.encode(), msgspec.json.encode(d)


def _outcomes(settings: Settings) -> list[Outcome]:
    return [msgspec.json.decode(m.value, type=Outcome) for m in read_to_end(settings, settings.topic("outcomes"))]


def test_sms_adapter_and_task_feed_on_the_wall_clock(isolated: Settings, worker: WorkerProcess, tmp_path) -> None:
    start_ms = int(time.time() * 1000)
    ts = a_moment_ago(start_ms)
    load_registry(isolated)
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    feed = f"http://127.0.0.1:{isolated.feed_port}"
    with cli_process(isolated, tmp_path, "gateway", "test-gateway", "--port", str(port)), \
            cli_process(isolated, tmp_path, "adapter", "sms-gateway", "--url", gateway, "--receipt-every", "1"), \
            cli_process(isolated, tmp_path, "feed", "task-feed"):
        wait_http(f"{gateway}/admin/messages")
        wait_http(f"{feed}/healthz")
        transfer = TransferRef(transfer_id="TR-1", payer_account="6222000000000001",
                               payee_account="6217000011112222", amount_fen=500_000, ts=ts)
        produce(isolated, "yujing.decisions", [_decision("w-bob", "S_BOB", "T3", ts),
                                               _decision("w-alice", "S_ALICE", "T1", ts, transfer)])
        sms_id = step_id("w-bob", "sms", 0)

        # Bob's reminder: delivered once, on the wall clock, and its receipt ends the step
        received = wait_for(lambda: Feed(gateway, None).call("GET", "/admin/messages")[1].get(sms_id), 60,
                            f"the gateway to receive {sms_id}; adapter log:\n{(tmp_path / 'adapter.log').read_text()}")
        assert received["deliveries"] == 1 and received["attempts"] == 1
        receipt = wait_for(lambda: [o for o in _outcomes(isolated) if o.message_id == sms_id], 30, "the receipt")[0]
        assert receipt.outcome == "sms_delivered"
        assert start_ms <= receipt.ts <= int(time.time() * 1000)  # stamped when it happened, not in event time
        r = connect_sync(isolated.redis_url, **isolated.redis_options())
        pending = f"{escalation_prefix(isolated.redis_prefix)}pending"
        wait_for(lambda: r.zscore(pending, "w-bob|0") is None, 30, "the delivered SMS to end its step")

        # Alice's call task: on the caller's feed, claimed and reported, the report stamped now
        caller = Feed(feed, feed_token({**os.environ, **isolated.to_env()}, "--station", "ST0", "--worker", "desk-1"))
        task_id = step_id("w-alice", "phone", 0)
        wait_for(lambda: task_id in [t["task_id"] for t in caller.tasks()], 60, "the call task on the feed")
        assert caller.call("POST", f"/v1/tasks/{task_id}/claim")[0] == 200
        assert caller.call("POST", f"/v1/tasks/{task_id}/outcome", {"outcome": "call_answered"})[0] == 202
        report = wait_for(lambda: [o for o in _outcomes(isolated) if o.task_id == task_id], 30, "the report")[0]
        assert report.outcome == "call_answered" and start_ms <= report.ts <= int(time.time() * 1000)
        wait_for(lambda: r.zscore(pending, "w-alice|0") is None, 30, "the answered call to end its step")
        r.close()

