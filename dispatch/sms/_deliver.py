"""Sending one message through a provider: rate limit, retries and throttling by the provider's verdict, expiry.

Small stages, as in Alertmanager's notify package: a provider sends one message once and says what its answer
means (accepted, retry, throttled, rejected, or uncertain: the request may have reached it); `deliver` waits,
retries and gives up by that verdict. The clock and sleep are handed in. Acceptance is not delivery: only the
provider's receipt, later, makes `sms_delivered`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Literal, Protocol

from schemas.records import Outcome, SmsTask

Clock = Callable[[], float]  # seconds
Sleep = Callable[[float], Awaitable[None]]
Verdict = Literal["accepted", "retry", "throttled", "rejected", "uncertain"]


@dataclass(frozen=True)
class SendResult:
    """One attempt's verdict, the provider's reference for an accepted message, and its words."""

    verdict: Verdict
    ref: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Receipt:
    """A provider's delivery report: final (delivered or failed) or not yet; found by our message id or its ref."""

    delivered: bool
    detail: str
    message_id: str = ""
    ref: str = ""
    final: bool = True


@dataclass(frozen=True)
class Sent:
    """A message the provider accepted (or may have: `ref` empty) and whose receipt has not come yet."""

    message_id: str
    to: str
    ref: str
    accepted_ms: int  # wall clock


class Provider(Protocol):
    """An SMS provider: sends one message once; pulls receipts for messages sent (none for push providers)."""

    name: str

    async def send(self, task: SmsTask) -> SendResult: ...

    async def pull(self, waiting: list[Sent]) -> list[Receipt]: ...


class TokenBucket:
    """At most `rate` messages per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Clock, sleep: Sleep) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._last = float(burst), clock()
        self._clock, self._sleep = clock, sleep

    async def take(self) -> None:
        """Wait for a token."""
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self.rate)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts that failed, capped; a fixed wait after the provider throttled."""

    first_s: float = 0.5
    cap_s: float = 30.0
    throttled_s: float = 60.0  # Alibaba's and Tencent's per-number limits are per 30 s, minute and hour

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failure (1-based)."""
        return min(self.cap_s, self.first_s * 2 ** (attempt - 1))


@dataclass(frozen=True)
class Accepted:
    """The provider took the message (its receipt comes later), or may have (`verdict` uncertain)."""

    ref: str
    verdict: Verdict
    attempts: int
    detail: str


@dataclass(frozen=True)
class Deferred:
    """The provider throttled the message (a per-number limit): try again after `after_s`, without holding up
    the others meanwhile."""

    after_s: float
    detail: str


async def deliver(task: SmsTask, provider: Provider, bucket: TokenBucket, retry: RetryPolicy,
                  now_ms: Callable[[], int], sleep: Sleep) -> Accepted | Deferred | Outcome:
    """Send one task: wait for `not_before_ts`, retry failures that surely did not send until `expires_ts`.
    Accepted (or uncertain: never sent again, a receipt may settle it), deferred when throttled, else the
    `sms_failed` outcome."""
    attempt = 0
    while True:
        now = now_ms()
        if now >= task.expires_ts:
            return failed(task, now, f"expired unsent after {attempt} attempt(s)")
        if now < task.not_before_ts:  # quiet hours
            await sleep(min(60.0, (task.not_before_ts - now) / 1000))
            continue
        await bucket.take()
        attempt += 1
        result = await provider.send(task)
        if result.verdict in ("accepted", "uncertain"):
            return Accepted(result.ref, result.verdict, attempt, result.detail)
        if result.verdict == "rejected":
            return failed(task, now_ms(), f"attempt {attempt}: {result.detail} (not retryable)")
        if result.verdict == "throttled":
            return Deferred(retry.throttled_s, f"attempt {attempt}: {result.detail}")
        await sleep(retry.delay(attempt))


def failed(task: SmsTask, ts: int, note: str) -> Outcome:
    """The `sms_failed` outcome of a task."""
    return settled(task.warning_id, task.message_id, False, ts, note)


def settled(warning_id: str, message_id: str, delivered: bool, ts: int, note: str) -> Outcome:
    """The outcome a receipt (or its absence) settles a message with."""
    return Outcome(warning_id=warning_id, channel="sms", message_id=message_id,  # type: ignore[arg-type]
                   outcome="sms_delivered" if delivered else "sms_failed", ts=ts, note=note[:1024])  # type: ignore[arg-type]
