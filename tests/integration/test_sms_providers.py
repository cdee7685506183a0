"""Each SMS provider's shape through the adapter, over real HTTP, Kafka and Redis with the test gateway: a
business error given up at once, a throttled message sent again after the wait, a repeated message refused by our
ledger (the gateway, like Alibaba, would send it twice), `sms_delivered` only when the receipt comes, a failed
receipt reported failed, and wrong credentials refused by the gateway's signature check."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import msgspec
import pytest

from deploy.config import Settings
from schemas.records import Outcome, SmsTask, encode
from streams.kafka_io import consume, produce
from tests.integration.harness import cli_process, free_port, http_json, wait_http
from tests.integration.scenario import wait_for

T = int(time.time() * 1000)  # the wall clock: a throttled message waits wall seconds
RECEIPT_DELAY_S = 8.0  # long enough to look for an outcome between the send and its receipt


def _task(message_id: str, to: str) -> tuple[bytes, bytes]:
    t = SmsTask(warning_id=f"w-{message_id}", tier="T3", fraud_type="romance", ts=T, message_id=message_id, to=to,
                text="【反诈中心】网恋对象劝你投资、充值、转账的都是诈骗。咨询请拨96110。", not_before_ts=T,
                expires_ts=T + 3_600_000)
    return t.to.encode(), encode(t)



def _adapter_args(provider: str, base: str) -> list[str]:
    args = ["sms-gateway", "--provider", provider, "--url", base, "--clock", "wall", "--receipt-every", "1",
            "--throttle-wait", "1", "--rate", "20"]
    return args + (["--receipt-port", str(free_port())] if provider == "jasmin" else [])


def _by_line(messages: dict, to: str) -> dict:
    """The gateway's record of the message to `to` (Jasmin's records go by its own ids, not ours)."""
    found = [m for m in messages.values() if m["to"] == to]
    assert len(found) <= 1, found
    return found[0] if found else {}


def _outcomes(settings: Settings, expect: int, timeout: float = 60) -> dict[str, Outcome]:
    return {o.message_id or "": o for o in (msgspec.json.decode(m.value, type=Outcome) for m in
                                            consume(settings, "outcomes", expect=expect, timeout=timeout, linger=1))}


@pytest.mark.parametrize("provider", ["alibaba", "tencent", "jasmin"])
def test_provider_errors_throttling_duplicates_and_receipts(provider: str, isolated: Settings, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bad, slow, ok, lost = "+8613800000001", "+8613800000002", "+8613800000003", "+8613800000004"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)), \
            cli_process(isolated, tmp_path, "adapter", *_adapter_args(provider, base)):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/receipts", {"delay_s": RECEIPT_DELAY_S, "status": "delivered"})
        http_json(f"{base}/admin/fail", {"count": 1, "kind": "business"})
        produce(isolated, "dispatch.sms", [_task("m-bad", bad)])
        first = _outcomes(isolated, expect=1)
        assert first["m-bad"].outcome == "sms_failed" and "(not retryable)" in (first["m-bad"].note or ""), first

        http_json(f"{base}/admin/fail", {"count": 1, "kind": "throttle"})
        produce(isolated, "dispatch.sms", [_task("m-slow", slow), _task("m-slow", slow)])  # the second: a repeat
        wait_for(lambda: _by_line(http_json(f"{base}/admin/messages"), slow).get("deliveries") == 1, 30,
                 "the throttled message sent again and taken")
        before_receipt = _outcomes(isolated, expect=2, timeout=2)
        assert set(before_receipt) == {"m-bad"}, before_receipt  # taken is not delivered: no outcome yet

        settled = _outcomes(isolated, expect=2, timeout=RECEIPT_DELAY_S + 30)
        assert settled["m-slow"].outcome == "sms_delivered" and (settled["m-slow"].note or "").startswith("receipt")

        http_json(f"{base}/admin/receipts", {"delay_s": 0, "status": "failed"})
        produce(isolated, "dispatch.sms", [_task("m-ok", ok), _task("m-slow", slow)])  # and m-slow once more
        final = _outcomes(isolated, expect=3)
        assert final["m-ok"].outcome == "sms_failed" and (final["m-ok"].note or "").startswith("receipt"), final
        messages = http_json(f"{base}/admin/messages")

        http_json(f"{base}/admin/receipts", {"status": "none"})  # a receipt that never comes
        produce(isolated, "dispatch.sms", [_task("m-lost", lost)])
        wait_for(lambda: _by_line(http_json(f"{base}/admin/messages"), lost).get("deliveries") == 1, 30, "m-lost sent")
    assert _by_line(messages, bad)["attempts"] == 1  # refused for good: never asked again
    assert (_by_line(messages, slow)["attempts"], _by_line(messages, slow)["deliveries"]) == (2, 1)  # throttled once
    assert _by_line(messages, ok)["deliveries"] == 1
    assert _by_line(messages, slow)["text"] == "【反诈中心】网恋对象劝你投资、充值、转账的都是诈骗。咨询请拨96110。"
    assert len(_outcomes(isolated, expect=4, timeout=3)) == 3  # m-lost waits for its receipt, no outcome
    log = (tmp_path / "adapter.log").read_text()
    assert "Traceback" not in log, log


def test_a_message_without_receipt_is_failed_after_the_receipt_timeout(isolated: Settings, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)), \
            cli_process(isolated, tmp_path, "adapter", *_adapter_args("tencent", base), "--receipt-timeout", "3"):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/receipts", {"status": "none"})
        produce(isolated, "dispatch.sms", [_task("m-silent", "+8613800000005")])
        outcome = _outcomes(isolated, expect=1)["m-silent"]
    assert outcome.outcome == "sms_failed" and "no receipt within 3 s" in (outcome.note or ""), outcome


@pytest.mark.parametrize(("provider", "refusal"), [
    ("alibaba", "SignatureDoesNotMatch"),
    ("tencent", "AuthFailure.SignatureFailure"),
    ("jasmin", "Authentication failure"),
])
def test_wrong_credentials_are_refused_and_not_retried(provider: str, refusal: str, isolated: Settings,
                                                       tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    wrong = dataclasses.replace(isolated, sms_secret="wrong-01")
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)), \
            cli_process(wrong, tmp_path, "adapter", *_adapter_args(provider, base)):
        wait_http(f"{base}/admin/messages")
        produce(isolated, "dispatch.sms", [_task("m-x", "+8613800000006")])
        outcome = _outcomes(isolated, expect=1)["m-x"]
        messages = http_json(f"{base}/admin/messages")
    assert outcome.outcome == "sms_failed" and refusal in (outcome.note or ""), outcome
    assert all(m["deliveries"] == 0 for m in messages.values()), messages  # nothing went out


@pytest.mark.parametrize("provider", ["alibaba", "jasmin"])
def test_a_send_whose_answer_was_lost_is_never_sent_again_and_its_receipt_settles_it(
        provider: str, isolated: Settings, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    line = "+8613800000007"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)), \
            cli_process(isolated, tmp_path, "adapter", *_adapter_args(provider, base)):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/fail", {"count": 1, "kind": "hang"})  # answers after 8 s, having taken it
        produce(isolated, "dispatch.sms", [_task("m-hang", line)])
        outcome = _outcomes(isolated, expect=1)["m-hang"]
        messages = http_json(f"{base}/admin/messages")
    log = (tmp_path / "adapter.log").read_text()
    assert "m-hang uncertain by" in log, log  # the client gave up before the answer
    assert (_by_line(messages, line)["attempts"], _by_line(messages, line)["deliveries"]) == (1, 1)  # never again
    assert outcome.outcome == "sms_delivered" and (outcome.note or "").startswith("receipt"), outcome


def test_a_throttled_message_does_not_hold_up_the_next(isolated: Settings, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first, second = "+8613800000008", "+8613800000009"
    args = _adapter_args("tencent", base)
    args[args.index("--throttle-wait") + 1] = "6"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)), \
            cli_process(isolated, tmp_path, "adapter", *args):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/fail", {"count": 1, "kind": "throttle"})
        produce(isolated, "dispatch.sms", [_task("m-first", first), _task("m-second", second)])
        wait_for(lambda: _by_line(http_json(f"{base}/admin/messages"), second).get("deliveries") == 1, 20,
                 "the second message sent")
        meanwhile = _by_line(http_json(f"{base}/admin/messages"), first)
        wait_for(lambda: _by_line(http_json(f"{base}/admin/messages"), first).get("deliveries") == 1, 30,
                 "the throttled one sent after its wait")
        messages = http_json(f"{base}/admin/messages")
    assert (meanwhile["attempts"], meanwhile["deliveries"]) == (1, 0)  # parked, not waited for in line
    assert _by_line(messages, second)["order"] < _by_line(messages, first)["order"]
    assert _by_line(messages, first)["attempts"] == 2


def test_marks_redis_lost_are_put_back_from_the_durable_ledger(isolated: Settings, tmp_path: Path) -> None:
    from deploy.redis_client import connect_sync
    from dispatch.sms import adapter_prefix

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    line = "+8613800000010"
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/receipts", {"delay_s": 25, "status": "delivered"})
        produce(isolated, "dispatch.sms", [_task("m-mark", line)])
        with cli_process(isolated, tmp_path, "adapter", *_adapter_args("alibaba", base)):
            wait_for(lambda: _by_line(http_json(f"{base}/admin/messages"), line).get("deliveries") == 1, 30,
                     "m-mark taken by the provider")
        # Redis loses its last writes (an AOF written once a second, a replica behind): the message's mark and
        # its wait for a receipt go, the partitions' markers stay, so no rebuild is started
        r = connect_sync(isolated.redis_url, **isolated.redis_options())
        try:
            lost = [k for k in r.scan_iter(match=f"{adapter_prefix(isolated.redis_prefix)}*") if b":loaded:" not in k]
            assert r.delete(*lost) >= 2
        finally:
            r.close()
        produce(isolated, "dispatch.sms", [_task("m-mark", line)])  # and the message is read again
        with cli_process(isolated, tmp_path, "adapter2", *_adapter_args("alibaba", base)):
            outcome = _outcomes(isolated, expect=1, timeout=90)["m-mark"]
            messages = http_json(f"{base}/admin/messages")
    assert _by_line(messages, line)["attempts"] == 1, messages  # never sent again (without the put-back: 2)
    log = (tmp_path / "adapter2.log").read_text()
    assert "mark(s) put back from the durable ledger" in log, log
    assert "rebuilding what Redis kept" not in log, log
    assert outcome.outcome == "sms_delivered", outcome  # and its receipt still found it


def test_a_forged_jasmin_receipt_is_refused(isolated: Settings, tmp_path: Path) -> None:
    import urllib.error
    import urllib.parse

    port, receipt_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    args = [*_adapter_args("jasmin", base)[:-2], "--receipt-port", str(receipt_port)]
    with cli_process(isolated, tmp_path, "gw", "test-gateway", "--port", str(port)), \
            cli_process(isolated, tmp_path, "adapter", *args):
        wait_http(f"{base}/admin/messages")
        http_json(f"{base}/admin/receipts", {"delay_s": 30, "status": "delivered"})
        produce(isolated, "dispatch.sms", [_task("m-real", "+8613800000011")])
        wait_for(lambda: _by_line(http_json(f"{base}/admin/messages"), "+8613800000011").get("deliveries") == 1,
                 30, "m-real sent")
        forged = urllib.parse.urlencode({"id": "x", "message_status": "DELIVRD", "level": "2",
                                         "message_id": "m-real", "token": "0" * 32}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{receipt_port}/receipts/jasmin", data=forged, timeout=5)
        assert refused.value.code == 403
        assert len(_outcomes(isolated, expect=1, timeout=3)) == 0  # no sms_delivered from a forged receipt
