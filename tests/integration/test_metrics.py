"""A running worker's `/metrics` after a burst: the counters equal what was fed, latencies observed, lag exposed."""
from __future__ import annotations

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from deploy.config import Settings
from deploy.kafka_io import produce
from deploy.workers import WorkerProcess
from schemas.internal import TransferRef
from tests.integration.scenario import HOUR, T, background, load_registry, wait_for
from tests.integration.test_dispatch import decision


def scrape(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the worker's /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_match_what_was_fed(isolated: Settings, worker: WorkerProcess) -> None:
    load_registry(isolated)
    bad = [(b"k", b"{not json"), (b"k", b"\xff\xfe"),
           (b"k", json.dumps({"event_id": "x1", "kind": "call", "direction": "in", "subscriber": "+8613800000001",
                              "counterpart": "+8613700000000"}).encode()),  # no ts
           (b"k", json.dumps({"event_id": "x2", "ts": T, "kind": "call", "direction": "in",
                              "subscriber": "12345", "counterpart": "+8613700000000"}).encode())]  # not E.164
    produce(isolated, "signals.telecom", background(30) + bad)
    transfer = TransferRef(transfer_id="TR-9", payer_account="6222000000000001", payee_account="6217000011112222",
                           amount_fen=880_000, ts=T + 2 * HOUR)
    produce(isolated, "yujing.decisions", [decision("w-t3", "T3", T), decision("w-t3-again", "T3", T + HOUR),
                                           decision("w-t1", "T1", T + 2 * HOUR, transfer)])

    def settled() -> dict | None:
        s = scrape(isolated)
        done = (value(s, "yujing_events_in_total", topic="signals.telecom") >= 34
                and value(s, "yujing_events_in_total", topic="yujing.decisions") >= 3)
        return s if done else None

    wait_for(settled, 60, "the burst to be counted")
    s = wait_for(settled, 5, "the counters")  # one more scrape, after the last sends
    assert value(s, "yujing_events_in_total", topic="signals.telecom") == 34, worker.log_tail()
    assert value(s, "yujing_events_in_total", topic="registry.subjects") == 4
    assert value(s, "yujing_deadletters_total", topic="signals.telecom", reason="not_json") == 1
    assert value(s, "yujing_deadletters_total", topic="signals.telecom", reason="not_utf8") == 1
    assert value(s, "yujing_deadletters_total", topic="signals.telecom", reason="invalid_field") == 2
    assert value(s, "yujing_warnings_total", tier="T3", fraud_type="fake_customer_service") == 1
    assert value(s, "yujing_warnings_total", tier="T1", fraud_type="fake_customer_service") == 1
    assert value(s, "yujing_cooldown_suppressed_total") == 1
    assert value(s, "yujing_dispatches_total", channel="sms", tier="T3") == 1
    assert value(s, "yujing_dispatches_total", channel="phone", tier="T1") == 1
    assert value(s, "yujing_tasks_total", channel="visit", station="ST0") == 1
    assert value(s, "yujing_interceptions_total", kind="payment") == 1
    assert value(s, "yujing_stop_payment_requested_fen_total") == 880_000
    assert value(s, "yujing_signal_to_warning_seconds_count") == 2
    assert value(s, "yujing_transfer_to_stop_payment_seconds_count") == 1
    assert 0 < value(s, "yujing_transfer_to_stop_payment_seconds_sum") < 60

    def lag() -> dict:  # known once the worker has committed (every few seconds)
        return {dict(labels)["partition"]: v for (name, labels), v in scrape(isolated).items()
                if name == "yujing_consumer_lag_messages" and dict(labels)["topic"] == "signals.telecom"}
    assert set(wait_for(lag, 30, "consumer lag of signals.telecom")) == {"0", "1"}
    assert not any("+86" in str(k) or "S_ALICE" in str(k) for k in s)  # no personal data in labels
