"""A running worker's `/metrics` after a burst: the counters equal what was fed, latencies observed, lag exposed."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from deploy.config import Settings
from deploy.workers import WorkerProcess
from ops.metrics import scrape_samples
from schemas.internal import TransferRef
from streams.kafka_io import produce
from tests.integration.harness import free_port
from tests.integration.scenario import HOUR, T, background, load_registry, wait_for
from tests.integration.test_dispatch import decision


def scrape(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the worker's /metrics, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5) as resp:
        return scrape_samples(resp.read().decode())


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def prometheus_query(port: int, query: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]["result"]


def test_counters_match_what_was_fed(isolated: Settings, worker: WorkerProcess, tmp_path: Path) -> None:
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

    # a real Prometheus server (Debian's package) scrapes the worker and sees the same counts
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is missing: run the tests through scripts/test.sh")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: yujing-worker, static_configs: [{{targets: ['127.0.0.1:{isolated.web_port}']}}]}}]\n")
    server = subprocess.Popen([exe, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
    try:
        def scraped() -> list[dict]:
            try:
                return prometheus_query(port, 'yujing_events_in_total{job="yujing-worker", topic="signals.telecom"}')
            except OSError:
                return []
        result = wait_for(scraped, 60, "Prometheus to scrape the worker")
        assert float(result[0]["value"][1]) == 34
        stop = prometheus_query(port, "yujing_stop_payment_requested_fen_total")
        assert float(stop[0]["value"][1]) == 880_000
    finally:
        server.terminate()
        server.wait(20)
