"""Live scoring on the real broker: a refund scam unfolding is tiered up to T1 with a stop-payment request."""
from __future__ import annotations

import json

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import Decision
from schemas.records import TIER_RANK
from scorers.model import load
from streams.kafka_io import consume, produce
from tests.integration.scenario import HOUR, T, load_registry

MIN = 60_000
ALICE = "+8613800000001"


def _call(event_id: str, ts: int, duration: int) -> tuple[bytes, bytes]:
    doc = {"event_id": event_id, "ts": ts, "kind": "call", "direction": "in", "subscriber": ALICE,
           "counterpart": "+0085291234567", "duration_s": duration, "counterpart_tags": ["spoof_suspect"]}
    return ALICE.encode(), json.dumps(doc).encode()


def test_refund_scam_rises_to_t1_and_asks_for_a_stop_payment(isolated: Settings, worker: WorkerProcess) -> None:
    load_registry(isolated)
    sms = {"event_id": "fcs-sms", "ts": T + 15 * MIN, "kind": "sms", "direction": "in", "subscriber": ALICE,
           "counterpart": "+86 170 1234 5678", "urls": ["http://refund-7731.top/claim?o=88"],
           "counterpart_tags": ["virtual_operator"]}
    produce(isolated, "signals.telecom", [_call("fcs-call", T, 2280), (ALICE.encode(), json.dumps(sms).encode())])
    produce(isolated, "signals.domain", [
        (ALICE.encode(), json.dumps({"event_id": "fcs-visit", "ts": T + 20 * MIN, "subscriber": ALICE,
                                     "kind": "http", "domain": "refund-7731.top"}).encode()),
        (ALICE.encode(), json.dumps({"event_id": "fcs-app", "ts": T + 30 * MIN, "subscriber": ALICE,
                                     "kind": "app_install", "app": "com.tencent.wemeet.app"}).encode())])
    produce(isolated, "signals.payment", [(b"6222000000000001", json.dumps({
        "event_id": "fcs-pay", "ts": T + 55 * MIN, "transfer_id": "TR-1", "status": "initiated",
        "payer_account": "6222000000000001", "payee_account": "6217999900001111", "payee_bank": "BOCOM",
        "amount_fen": 1_250_000, "channel": "mobile", "payee_first_seen": True}).encode())])

    decisions = [msgspec.json.decode(m.value, type=Decision)
                 for m in consume(isolated, "yujing.decisions", expect=2, timeout=60, linger=3)]
    assert decisions, worker.log_tail()
    last = decisions[-1]
    assert (last.person, last.tier, last.rose) == ("S_ALICE", "T1", True), [(d.tier, d.ts) for d in decisions]
    assert last.transfer is not None and last.transfer.transfer_id == "TR-1"
    assert last.transfer.payer_account == "6222000000000001" and last.transfer.amount_fen == 1_250_000
    assert last.ts == T + 55 * MIN and "fcs-pay" in last.evidence and "fcs-call" in last.evidence
    assert last.reasons and all(r.detail for r in last.reasons)
    model = load(isolated.model_path)  # the worker's model, and the thresholds tuned with it
    assert last.model_version == model.version and last.policy_version == model.tier_policy().version
    ranks = [TIER_RANK[d.tier] for d in decisions if d.rose]
    assert ranks == sorted(set(ranks))  # each warning raises the tier: T3/T2 … then T1, never twice, never down
    assert len({d.decision_id for d in decisions}) == len(decisions)
    assert T - HOUR < decisions[0].ts
