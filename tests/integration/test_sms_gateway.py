"""The SMS gateway adapter over real HTTP, Kafka and Redis (the test gateway in Alibaba's shape, the default):
server errors retried then accepted once, a redelivered task not sent twice, an expired one reported and not
sent, receipts on `outcomes`; a tombstone and a malformed task dead-lettered without a crash."""
from __future__ import annotations

import urllib.request
from pathlib import Path

import msgspec

from deploy.config import Settings
from schemas.records import DeadLetter, Outcome, SmsTask, encode
from streams.kafka_io import consume, produce
from tests.integration.harness import cli_process, free_port, http_json, wait_http
from tests.integration.scenario import wait_for

T = 1_764_547_200_000


def _task(message_id: str, ts: int, expires_ts: int, not_before_ts: int | None = None) -> tuple[bytes, bytes]:
    t = SmsTask(warning_id=f"w-{message_id}", tier="T3", fraud_type="romance", ts=ts, message_id=message_id,
                to="+8613800000001", text="【反诈中心】测试 96110", not_before_ts=not_before_ts or ts,
                expires_ts=expires_ts)
    return t.to.encode(), encode(t)



def test_retries_then_delivers_once_and_reports_expired(isolated: Settings, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/fail", {"count": 3, "status": 503})
        produce(isolated, "dispatch.sms", [
            _task("m-1", T, T + 3_600_000),
            _task("m-1", T, T + 3_600_000),            # the same task again (a redelivery after a crash)
            _task("m-quiet", T, T + 20 * 3_600_000, not_before_ts=T + 10 * 3_600_000),  # waits for 08:00
            _task("m-2", T + 60_000, T + 3_600_000),     # … and must not wait behind it
            _task("m-old", T - 7_200_000, T - 3_600_000),  # expired before the adapter got to it
            (b"+8613800000001", None),                  # a tombstone: dead-lettered, not a crash
            (b"+8613800000001", b'{"message_id": 7}'),  # a malformed task: the same
        ])
        with cli_process(isolated, tmp_path, "adapter", "sms-gateway", "--url", base, "--receipt-every", "1",
                         "--rate", "20", "--clock", "event", "--metrics-port", str(metrics_port)):
            receipts = [msgspec.json.decode(m.value, type=Outcome)
                        for m in consume(isolated, "outcomes", expect=3, timeout=60, linger=3)]
            messages = http_json(f"{base}/admin/messages")
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
            dead = [msgspec.json.decode(m.value, type=DeadLetter)
                    for m in consume(isolated, "deadletter", expect=2, timeout=30, linger=1)]
    log = (tmp_path / "adapter.log").read_text()
    assert sorted((d.topic, d.reason) for d in dead) == [
        ("dispatch.sms", "Expected `str`, got `int`"), ("dispatch.sms", "empty message (null value)")], log
    assert "Traceback" not in log
    assert {k: v["deliveries"] for k, v in messages.items()} == {"m-1": 1, "m-2": 1}, log  # m-quiet: parked
    assert messages["m-1"]["attempts"] == 4  # three isp.SYSTEM_ERROR, then accepted; never again under that id
    by_id = {r.message_id: r for r in receipts}
    assert sorted(by_id) == ["m-1", "m-2", "m-old"] and len(receipts) == 3, log
    assert by_id["m-1"].outcome == "sms_delivered" and (by_id["m-1"].note or "").startswith("receipt DELIVERED")
    assert by_id["m-old"].outcome == "sms_failed" and "expired" in (by_id["m-old"].note or "")
    assert all(r.channel == "sms" and r.warning_id == f"w-{r.message_id}" for r in receipts)
    assert 'yujing_sms_deliveries_total{kind="warning",outcome="sms_delivered"} 2.0' in metrics
    assert 'yujing_sms_deliveries_total{kind="warning",outcome="sms_failed"} 1.0' in metrics
    assert 'yujing_sms_waiting{kind="warning"} 1.0' in metrics  # m-quiet, parked until 08:00
    assert 'yujing_sms_accepted_total{kind="warning",verdict="accepted"} 2.0' in metrics
    assert 'yujing_sms_receipts_total{result="delivered"} 2.0' in metrics


def test_parked_messages_lost_with_redis_are_parked_again_and_nothing_is_sent_twice(isolated: Settings,
                                                                                   tmp_path: Path) -> None:
    from deploy.redis_client import connect_sync
    from dispatch.sms import adapter_prefix

    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    prefix = adapter_prefix(isolated.redis_prefix)
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)):
        wait_http(f"{base}/admin/messages")
        produce(isolated, "dispatch.sms", [
            _task("m-sent", T, T + 3_600_000),
            _task("m-later", T, T + 20 * 3_600_000, not_before_ts=T + 10 * 3_600_000),  # parked in Redis
        ])
        with cli_process(isolated, tmp_path, "adapter", "sms-gateway", "--url", base, "--receipt-every", "1",
                         "--rate", "20", "--clock", "event", "--metrics-port", str(metrics_port)):
            consume(isolated, "outcomes", expect=1, timeout=60)
            r = connect_sync(isolated.redis_url, **isolated.redis_options())
            try:
                wait_for(lambda: r.zcard(prefix + "parked") == 1, 30, "m-later parked")
                gone = r.delete(*r.scan_iter(match=prefix + "*"))  # Redis comes back without its data
                assert gone >= 3  # parked, done mark, marker
                wait_for(lambda: r.zcard(prefix + "parked") == 1, 60, "m-later parked again")
                assert [msgspec.json.decode(m, type=SmsTask).message_id for m in r.zrange(prefix + "parked", 0, -1)] \
                    == ["m-later"]
            finally:
                r.close()
            messages = http_json(f"{base}/admin/messages")
    log = (tmp_path / "adapter.log").read_text()
    assert "rebuilding what Redis kept from Kafka" in log, log
    assert messages["m-sent"]["attempts"] == 1 and "m-later" not in messages  # not sent again; not due yet
    assert len(consume(isolated, "outcomes", expect=1, timeout=5, linger=1)) == 1


def test_a_message_taken_by_the_provider_is_not_sent_again_after_redis_lost_the_ledger(isolated: Settings,
                                                                                       tmp_path: Path) -> None:
    from deploy.redis_client import connect_sync
    from dispatch.sms import adapter_prefix

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    prefix = adapter_prefix(isolated.redis_prefix)
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/receipts", {"delay_s": 20, "status": "delivered"})
        produce(isolated, "dispatch.sms", [_task("m-taken", T, T + 3_600_000)])
        with cli_process(isolated, tmp_path, "adapter", "sms-gateway", "--url", base, "--receipt-every", "1",
                         "--clock", "event"):
            wait_for(lambda: http_json(f"{base}/admin/messages").get("m-taken", {}).get("deliveries") == 1, 30,
                     "m-taken taken by the provider")
            r = connect_sync(isolated.redis_url, **isolated.redis_options())
            try:
                assert r.delete(*r.scan_iter(match=prefix + "*")) >= 3  # Redis comes back without its data
            finally:
                r.close()
            receipt = msgspec.json.decode(consume(isolated, "outcomes", expect=1, timeout=60)[0].value, type=Outcome)
            messages = http_json(f"{base}/admin/messages")
    log = (tmp_path / "adapter.log").read_text()
    assert "rebuilding what Redis kept from Kafka" in log, log
    assert messages["m-taken"]["attempts"] == 1, messages  # the durable ledger knew it was asked: never again
    assert receipt.outcome == "sms_delivered" and (receipt.note or "").startswith("receipt"), receipt  # still found
