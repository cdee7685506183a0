"""Delivering `dispatch.sms` to an HTTP SMS gateway: rate limit, retries on retryable failures only, receipts.

Small stages, as in Alertmanager's notify package: a notifier sends one message and says whether a failure is
retryable; `deliver` retries with exponential backoff until the message expires; a token bucket holds the
per-second rate. The clock and sleep are handed in. The gateway's idempotency key is `message_id`: a message
sent again after a crash carries the same id and the gateway does not send it twice.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import aiohttp
import msgspec

from schemas.records import Outcome, SmsTask

Clock = Callable[[], float]  # seconds
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class SendResult:
    """What one attempt gave: delivered, or failed (retryable or not), with the gateway's words."""

    delivered: bool
    retryable: bool = False
    detail: str = ""


class Notifier(Protocol):
    """Sends one SMS task once."""

    async def send(self, task: SmsTask) -> SendResult: ...


class HttpGateway:
    """An HTTP SMS gateway: POST {message_id, to, text} as JSON to its URL."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout_s: float = 5.0) -> None:
        self._session = session
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, task: SmsTask) -> SendResult:
        body = {"message_id": task.message_id, "to": task.to, "text": task.text}
        try:
            async with self._session.post(self._url, json=body, timeout=self._timeout) as resp:
                detail = f"HTTP {resp.status}"
                if resp.status in (200, 201, 202, 409):  # 409: already sent under this id, which is delivered
                    return SendResult(True, detail=detail)
                # Throttling and server trouble pass; a request the gateway rejects will be rejected again.
                return SendResult(False, retryable=resp.status == 429 or resp.status >= 500, detail=detail)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return SendResult(False, retryable=True, detail=f"{type(exc).__name__}")


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
    """Exponential backoff between attempts, capped."""

    first_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failure (1-based)."""
        return min(self.cap_s, self.first_s * 2 ** (attempt - 1))


async def deliver(task: SmsTask, notifier: Notifier, bucket: TokenBucket, retry: RetryPolicy, now_ms: Callable[[], int],
                  sleep: Sleep) -> Outcome:
    """Send one task: wait for `not_before_ts`, retry retryable failures until `expires_ts`; the receipt."""
    attempt = 0
    while True:
        now = now_ms()
        if now >= task.expires_ts:
            return _receipt(task, "sms_failed", now, f"expired unsent after {attempt} attempt(s)")
        if now < task.not_before_ts:  # quiet hours
            await sleep(min(60.0, (task.not_before_ts - now) / 1000))
            continue
        await bucket.take()
        attempt += 1
        result = await notifier.send(task)
        if result.delivered:
            return _receipt(task, "sms_delivered", now_ms(), f"attempt {attempt}: {result.detail}")
        if not result.retryable:
            return _receipt(task, "sms_failed", now_ms(), f"attempt {attempt}: {result.detail} (not retryable)")
        await sleep(retry.delay(attempt))


def _receipt(task: SmsTask, outcome: str, ts: int, note: str) -> Outcome:
    return Outcome(warning_id=task.warning_id, channel="sms", message_id=task.message_id,  # type: ignore[arg-type]
                   outcome=outcome, ts=ts, note=note)  # type: ignore[arg-type]


DONE_TTL_S = 30 * 86_400  # how long a message's mark (receipted, or erased) stays: as long as dispatch.sms keeps it


def adapter_prefix(redis_prefix: str) -> str:
    """The SMS adapter's Redis keys start with this."""
    return f"{redis_prefix}sms:"


def done_key(redis_prefix: str, message_id: str) -> str:
    """The mark of a message the SMS adapter must not send (again): receipted, or its person erased."""
    return f"{adapter_prefix(redis_prefix)}done:{message_id}"


def waiting_keys(redis_prefix: str) -> tuple[str, str]:
    """The SMS adapter's sorted sets of messages waiting in Redis: warnings not due yet, and reminders."""
    return adapter_prefix(redis_prefix) + "parked", adapter_prefix(redis_prefix) + "reminders"


async def forget_waiting(client: Any, redis_prefix: str, phones: set[str]) -> int:
    """A person erased: the messages to their lines waiting at the SMS adapter go, each marked done so that Kafka
    redelivering it does not send it; how many."""
    count = 0
    for key in waiting_keys(redis_prefix):
        waiting = {raw: msgspec.json.decode(raw) for raw in await client.zrange(key, 0, -1)}
        theirs = {raw: message["message_id"] for raw, message in waiting.items() if message.get("to") in phones}
        for message_id in theirs.values():
            await client.set(done_key(redis_prefix, message_id), "erased", ex=DONE_TTL_S)
        if theirs:
            count += await client.zrem(key, *theirs)
    return count
