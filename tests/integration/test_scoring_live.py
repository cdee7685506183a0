"""Live scoring on the real broker: a refund scam unfolding is tiered up to T1 with a stop-payment request."""
from __future__ import annotations

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import Decision
from schemas.records import TIER_RANK
from scorers.model import load
from streams.kafka_io import consume
from tests.integration.scenario import HOUR, MIN, T, feed_refund_scam


def test_refund_scam_rises_to_t1_and_asks_for_a_stop_payment(isolated: Settings, worker: WorkerProcess) -> None:
    feed_refund_scam(isolated)
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
