"""SMS delivery logic with an injected clock: retry what surely did not send, wait out throttling, give up on a
refusal, never resend an uncertain send, expire, wait out quiet hours; acceptance is not delivery."""
from __future__ import annotations

import asyncio

from dispatch.sms import Accepted, Deferred, RetryPolicy, SendResult, TokenBucket, deliver
from schemas.records import Outcome, SmsTask

T = 1_764_547_200_000
OK = SendResult("accepted", ref="biz-1", detail="OK: OK")


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


class Provider:
    name = "fake"

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent = 0

    async def send(self, task: SmsTask) -> SendResult:
        self.sent += 1
        return self.results.pop(0) if self.results else OK

    async def pull(self, waiting: list) -> list:  # type: ignore[type-arg]
        return []


def task(expires_in_s: float = 3600, not_before_in_s: float = 0) -> SmsTask:
    return SmsTask(warning_id="w", tier="T3", fraud_type="romance", ts=T, message_id="m1", to="+8613800000001",
                   text="x", not_before_ts=T + int(not_before_in_s * 1000), expires_ts=T + int(expires_in_s * 1000))


def run(t: SmsTask, provider: Provider, clock: Clock, retry: RetryPolicy = RetryPolicy(first_s=1, cap_s=8)):  # type: ignore[no-untyped-def]
    bucket = TokenBucket(1000, 10, clock.now_s, clock.sleep)
    return asyncio.run(deliver(t, provider, bucket, retry, clock.now_ms, clock.sleep))


def test_retryable_failures_back_off_then_the_provider_accepts_once() -> None:
    clock, p = Clock(), Provider(*[SendResult("retry", detail="isp.SYSTEM_ERROR")] * 5)
    result = run(task(), p, clock)
    assert result == Accepted("biz-1", "accepted", 6, "OK: OK") and p.sent == 6  # accepted: not yet delivered
    assert [s for s in clock.slept if s >= 1] == [1, 2, 4, 8, 8]  # exponential, capped


def test_a_throttled_message_is_deferred_not_waited_for() -> None:
    clock, p = Clock(), Provider(SendResult("throttled", detail="isv.BUSINESS_LIMIT_CONTROL"))
    result = run(task(), p, clock, RetryPolicy(first_s=1, throttled_s=60))
    # one number's limit must not hold up the other messages: the adapter parks it for 60 s instead
    assert result == Deferred(60, "attempt 1: isv.BUSINESS_LIMIT_CONTROL") and p.sent == 1
    assert not [s for s in clock.slept if s >= 1]


def test_a_rejected_message_is_not_retried() -> None:
    clock, p = Clock(), Provider(SendResult("rejected", detail="isv.MOBILE_NUMBER_ILLEGAL: 非法手机号"))
    result = run(task(), p, clock)
    assert isinstance(result, Outcome) and (result.outcome, p.sent) == ("sms_failed", 1)
    assert result.note == "attempt 1: isv.MOBILE_NUMBER_ILLEGAL: 非法手机号 (not retryable)"


def test_an_uncertain_send_is_never_sent_again() -> None:
    clock, p = Clock(), Provider(SendResult("uncertain", detail="no answer: timeout"))
    result = run(task(), p, clock)
    assert result == Accepted("", "uncertain", 1, "no answer: timeout") and p.sent == 1


def test_a_message_that_expires_while_the_provider_is_down_is_reported_not_sent() -> None:
    clock, p = Clock(), Provider(*[SendResult("retry", detail="unreachable")] * 100)
    result = run(task(expires_in_s=30), p, clock)
    assert isinstance(result, Outcome) and result.outcome == "sms_failed"
    assert (result.note or "").startswith("expired unsent after") and clock.ms >= T + 30_000


def test_quiet_hours_are_waited_out() -> None:
    clock, p = Clock(), Provider()
    assert isinstance(run(task(expires_in_s=36_000, not_before_in_s=600), p, clock), Accepted)
    assert clock.ms >= T + 600_000 and p.sent == 1


class DownFor(Provider):
    """A provider unreachable for the first `minutes` of the clock, then accepting."""

    def __init__(self, clock: Clock, minutes: float) -> None:
        super().__init__()
        self.clock, self.until = clock, T + int(minutes * 60_000)

    async def send(self, task: SmsTask) -> SendResult:
        self.sent += 1
        self.clock.ms += 5_000  # the client's connect timeout, spent waiting
        return SendResult("retry", detail="unreachable") if self.clock.ms < self.until else OK


def test_a_provider_down_for_ten_minutes_gets_the_message_once_it_is_back() -> None:
    clock = Clock()
    p = DownFor(clock, minutes=10)
    bucket = TokenBucket(1000, 10, clock.now_s, clock.sleep)
    result = asyncio.run(deliver(task(), p, bucket, RetryPolicy(), clock.now_ms, clock.sleep))  # the adapter's
    assert isinstance(result, Accepted)
    waits = [s for s in clock.slept if s >= 0.5]
    assert waits[:7] == [0.5, 1, 2, 4, 8, 16, 30] and set(waits[7:]) == {30}  # backoff, capped at 30 s
    assert T + 10 * 60_000 <= clock.ms < T + 11 * 60_000  # not long after it came back
