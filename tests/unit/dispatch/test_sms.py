"""SMS delivery logic with an injected clock: retry only what is retryable, back off, expire, wait out quiet hours."""
from __future__ import annotations

import asyncio

from dispatch.sms import RetryPolicy, SendResult, TokenBucket, deliver
from schemas.records import SmsTask

T = 1_764_547_200_000


class Clock:
    def __init__(self) -> None:
        self.ms = T
        self.slept: list[float] = []

    def now_ms(self) -> int:
        return self.ms

    def now_s(self) -> float:
        return self.ms / 1000

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ms += int(seconds * 1000)


class Gateway:
    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent = 0

    async def send(self, task: SmsTask) -> SendResult:
        self.sent += 1
        return self.results.pop(0) if self.results else SendResult(True, detail="HTTP 200")


def task(expires_in_s: float = 3600, not_before_in_s: float = 0) -> SmsTask:
    return SmsTask(warning_id="w", tier="T3", fraud_type="romance", ts=T, message_id="m1", to="+8613800000001",
                   text="x", not_before_ts=T + int(not_before_in_s * 1000), expires_ts=T + int(expires_in_s * 1000))


def run(t: SmsTask, gw: Gateway, clock: Clock):  # type: ignore[no-untyped-def]
    bucket = TokenBucket(1000, 10, clock.now_s, clock.sleep)
    return asyncio.run(deliver(t, gw, bucket, RetryPolicy(first_s=1, cap_s=8), clock.now_ms, clock.sleep))


def test_retryable_failures_back_off_then_deliver_once() -> None:
    clock, gw = Clock(), Gateway(*[SendResult(False, True, "HTTP 503")] * 5)
    receipt = run(task(), gw, clock)
    assert (receipt.outcome, gw.sent, receipt.message_id) == ("sms_delivered", 6, "m1")
    assert [s for s in clock.slept if s >= 1] == [1, 2, 4, 8, 8]  # exponential, capped
    assert receipt.note == "attempt 6: HTTP 200"


def test_a_rejected_message_is_not_retried() -> None:
    clock, gw = Clock(), Gateway(SendResult(False, False, "HTTP 400"))
    receipt = run(task(), gw, clock)
    assert (receipt.outcome, gw.sent) == ("sms_failed", 1) and "not retryable" in (receipt.note or "")


def test_a_message_that_expires_while_the_gateway_is_down_is_reported_not_sent() -> None:
    clock, gw = Clock(), Gateway(*[SendResult(False, True, "timeout")] * 100)
    receipt = run(task(expires_in_s=30), gw, clock)
    assert receipt.outcome == "sms_failed" and (receipt.note or "").startswith("expired unsent after")
    assert clock.ms >= T + 30_000


def test_quiet_hours_are_waited_out() -> None:
    clock, gw = Clock(), Gateway()
    receipt = run(task(expires_in_s=36_000, not_before_in_s=600), gw, clock)
    assert receipt.outcome == "sms_delivered" and receipt.ts >= T + 600_000 and gw.sent == 1


class DownFor:
    """A gateway that times out for the first `minutes` of the clock, then delivers (each id once)."""

    def __init__(self, clock: Clock, minutes: float) -> None:
        self.clock, self.until, self.sent, self.delivered = clock, T + int(minutes * 60_000), 0, []

    async def send(self, task: SmsTask) -> SendResult:
        self.sent += 1
        self.clock.ms += 5_000  # the client's timeout, spent waiting
        if self.clock.ms < self.until:
            return SendResult(False, True, "timeout")
        self.delivered.append(task.message_id)
        return SendResult(True, detail="HTTP 200")


def test_a_gateway_down_for_ten_minutes_gets_the_message_once_it_is_back() -> None:
    clock = Clock()
    gw = DownFor(clock, minutes=10)
    bucket = TokenBucket(1000, 10, clock.now_s, clock.sleep)
    receipt = asyncio.run(deliver(task(), gw, bucket, RetryPolicy(), clock.now_ms, clock.sleep))  # the adapter's
    assert receipt.outcome == "sms_delivered" and gw.delivered == ["m1"]  # once, when the gateway is back
    waits = [s for s in clock.slept if s >= 0.5]
    assert waits[:7] == [0.5, 1, 2, 4, 8, 16, 30] and set(waits[7:]) == {30}  # backoff, capped at 30 s
    assert T + 10 * 60_000 <= clock.ms < T + 11 * 60_000  # not long after it came back
