"""`yujing sms-gateway`: consume `dispatch.sms`, send through the configured SMS provider, settle by its receipts.

A message is marked in the Redis ledger before the provider is asked (a redelivered message with a mark is never
sent again, whatever the provider does with repeats: Alibaba's SendSms is not idempotent), then waits for its
receipt: pulled from the provider every few seconds (Alibaba, Tencent) or pushed to our callback (Jasmin). Only a
receipt writes `sms_delivered` (or `sms_failed`) to `outcomes`; a provider's refusal writes `sms_failed` at once,
and a message whose receipt has not come within the receipt timeout is reported `sms_failed` then. A send whose
answer was lost (a timeout after the request left) is not sent again: it waits for a receipt like the others.

A message not due yet (a warning held by quiet hours) must not hold up the others: it is parked in a Redis
sorted set under its `not_before_ts` (then its offset is committed), and sent when the clock reaches it. Reminder
campaigns' messages are parked the same way in a set of their own, and sent (a few at a time, within the same
rate limit) only while no warning is due or unread in Kafka: a campaign of millions never delays a warning by
more than one small batch.

Offsets are committed a few seconds after their effects (once Redis's AOF has them on disk). When Redis has lost
what it kept for a partition (its marker key gone: a Redis without its data), the partition is read again from
the start, and every message parked or sent unless `outcomes` holds its outcome.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import msgspec
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry, start_http_server

from deploy.config import Settings
from deploy.consumers import (
    OUTAGE,
    LaggingCommits,
    RedisLoss,
    after_outage,
    finished,
    is_outage,
)
from deploy.redis_client import connect
from dispatch.clock import pick_clock
from dispatch.metrics import SmsMetrics, sms_metrics
from dispatch.plan import templates
from dispatch.sms import (
    ACK,
    DONE_TTL_S,
    Accepted,
    Alibaba,
    Deferred,
    Jasmin,
    Ledger,
    Provider,
    ProviderTemplates,
    Receipt,
    RetryPolicy,
    TemplateError,
    Tencent,
    TokenBucket,
    adapter_prefix,
    callback_token,
    deliver,
    done_key,
    receipt_of,
    settled,
    waiting_keys,
)
from dispatch.stage import REDIS_AWAY
from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_typed
from schemas.internal import SmsSent
from schemas.records import Outcome, SmsTask, encode
from schemas.topics import SMS_LEDGER_TOPIC
from streams.kafka_io import iter_to_end
from streams.kafka_security import client_options

log = logging.getLogger(__name__)
REMINDER_BATCH = 10  # reminders sent between two looks for warnings


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """No warning waits in Kafka: every assigned partition has been read up to its high watermark."""
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return bool(consumer.assignment())


@dataclass(frozen=True)
class ReceiptOptions:
    """How receipts are awaited: pulled every `every_s`, a message without one failed after `timeout_s`; Jasmin's
    pushed to a callback on `port`, which the gateway reaches at `url`."""

    every_s: float = 30.0
    timeout_s: float = 86_400.0
    port: int | None = None
    url: str = ""

    @property
    def every_ms(self) -> int:
        """Milliseconds between looks for receipts."""
        return int(self.every_s * 1000)


def make_provider(settings: Settings, session: aiohttp.ClientSession, url: str, receipts: ReceiptOptions) -> Provider:
    """The provider the settings name, with their credentials and approved templates."""
    name = settings.sms_provider
    if not settings.sms_key_id or not settings.sms_secret:
        raise SystemExit(f"yujing sms-gateway: provider {name} needs SMS_KEY_ID and SMS_SECRET (or SMS_SECRET_FILE)")
    if name == "jasmin":
        if not receipts.port:
            raise SystemExit("yujing sms-gateway: Jasmin pushes its receipts: give --receipt-port")
        callback = receipts.url or f"http://127.0.0.1:{receipts.port}/receipts/jasmin"
        return Jasmin(session, url, settings.sms_key_id, settings.sms_secret, callback)
    try:
        approved = ProviderTemplates(name, templates(), *([settings.sms_templates] if settings.sms_templates else []))
    except TemplateError as exc:
        raise SystemExit(f"yujing sms-gateway: {exc}") from None
    if name == "alibaba":
        return Alibaba(url, settings.sms_key_id, settings.sms_secret, approved)
    if name == "tencent":
        if not settings.sms_app_id:
            raise SystemExit("yujing sms-gateway: Tencent needs SMS_APP_ID (the SmsSdkAppId)")
        return Tencent(url, settings.sms_key_id, settings.sms_secret, settings.sms_app_id, approved)
    raise SystemExit(f"yujing sms-gateway: unknown provider {name!r}: alibaba, tencent or jasmin")


RECENT_JOURNAL_MS = 10 * 60_000  # how much of the durable ledger is put back when Redis may have lost its last writes


def sent_journal(settings: Settings, since_ms: int | None = None) -> dict[str, SmsSent]:
    """The durable ledger read to its end (or since `since_ms`): the latest entry of every message asked of a
    provider."""
    latest = {}
    topic = settings.topic(SMS_LEDGER_TOPIC)
    for msg in iter_to_end(settings, topic, since_ms=since_ms):
        try:
            sent = msgspec.json.decode(msg.value, type=SmsSent)
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
            continue
        latest[sent.message_id] = sent
    return {m: s for m, s in latest.items() if s.state != "deferred"}  # throttled last: not taken, may go


def sms_message(outcome: Outcome) -> str | None:
    """The SMS message an outcome settles (None for a call's or a visit's)."""
    return outcome.message_id if outcome.channel == "sms" else None


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Deliveries:
    """Sending through the provider and settling by its receipts: the ledger's marks, outcomes, metrics."""

    settings: Settings
    provider: Provider
    producer: AIOKafkaProducer
    ledger: Ledger
    metrics: SmsMetrics
    bucket: TokenBucket
    retry: RetryPolicy
    receipts: ReceiptOptions
    now_ms: Callable[[], int]

    async def report(self, warning_id: str, message_id: str, kind: str, delivered: bool, note: str) -> None:
        """The message's outcome to `outcomes`, then its final mark."""
        outcome = settled(warning_id, message_id, delivered, self.now_ms(), note)
        await self.producer.send_and_wait(self.settings.topic("outcomes"), encode(outcome), key=warning_id.encode())
        await self.ledger.finish(message_id, outcome.outcome)
        self.metrics.deliveries.labels(kind, outcome.outcome).inc()
        log.info("%s %s: %s", message_id, outcome.outcome, note)

    async def journal(self, task: SmsTask, state: str, ref: str = "") -> SmsSent:
        """Write what is being done with a message to the durable ledger (acks=all), before doing more."""
        sent = SmsSent(message_id=task.message_id, warning_id=task.warning_id, to=task.to, kind=task.kind,
                       state=state, at=_wall_ms(), ref=ref)  # type: ignore[arg-type]
        await self.producer.send_and_wait(self.settings.topic(SMS_LEDGER_TOPIC), msgspec.json.encode(sent),
                                          key=task.message_id.encode())
        return sent

    async def send(self, task: SmsTask) -> int | None:
        """Send a message unless the ledger has it; a refusal or an expiry is reported at once. Returns the time
        (the adapter's clock, ms) to try a throttled message again; None otherwise."""
        mid = task.message_id
        mark = await self.ledger.mark(mid)
        if mark == "sending":  # the adapter stopped while asking the provider: never again; a receipt may come
            await self._await_receipt(await self.journal(task, "uncertain"))
            log.warning("%s: interrupted while sending; not sent again, waiting for a receipt", mid)
            return None
        if not await self.ledger.claim(mid, again=mark == "claimed"):
            return None  # sent (or being sent) already, or its person erased
        await self.journal(task, "sending")
        await self.ledger.set_mark(mid, "sending")
        result = await deliver(task, self.provider, self.bucket, self.retry, self.now_ms, asyncio.sleep)
        if isinstance(result, Accepted):
            await self._await_receipt(await self.journal(task, result.verdict, result.ref))
            self.metrics.accepted.labels(task.kind, result.verdict).inc()
            log.info("%s %s by %s after %d attempt(s): %s", mid, result.verdict, self.provider.name,
                     result.attempts, result.detail)
        elif isinstance(result, Deferred):  # not taken: journalled so, and free to be sent later
            await self.journal(task, "deferred")
            if not await self.ledger.release(mid):
                return None  # its person was erased meanwhile
            log.info("%s throttled, again in %.0f s: %s", mid, result.after_s, result.detail)
            return self.now_ms() + int(result.after_s * 1000)
        else:
            await self.report(task.warning_id, mid, task.kind, False, result.note or "")
        return None

    async def _await_receipt(self, sent: SmsSent) -> None:
        await self.ledger.await_receipt(sent, self.receipts.every_ms)
        early = await self.ledger.unmatched_for(sent)
        if early is not None:  # its receipt came first
            await self.settle(early)

    async def settle(self, receipt: Receipt) -> bool | None:
        """A receipt settles its message: True; False when it has nothing to settle (settled already);
        None when its message is not recorded yet (kept until it is)."""
        if not receipt.final:
            return True
        mid = await self.ledger.message_of(receipt)
        kept = await self.ledger.take(mid, _wall_ms())
        if kept is None:
            if mid and (await self.ledger.mark(mid)) not in (None, "claimed", "sending", "accepted"):
                return False  # settled already: a repeated receipt
            await self.ledger.keep_unmatched(receipt)
            kept = await self.ledger.take(mid, _wall_ms())  # recorded while the receipt was being kept?
            if kept is None:
                self.metrics.receipts.labels("unmatched").inc()
                return None
            await self.ledger.drop_unmatched(receipt)
        self.metrics.receipts.labels("delivered" if receipt.delivered else "failed").inc()
        await self._report_taken(mid, kept, receipt.delivered, receipt.detail)
        return True

    async def _report_taken(self, mid: str, kept: dict[str, str], delivered: bool, note: str) -> None:
        """The outcome of a message taken to be settled; given back to the waiting if it cannot be written."""
        try:
            await self.report(kept["warning_id"], mid, kept["kind"], delivered, note)
        except BaseException:
            await self.ledger.give_back(mid, int(kept.get("at", _wall_ms())))
            raise

    async def restore_recent(self) -> int:
        """Put back the marks of the last minutes from the durable ledger where Redis has none (it may have lost
        its last writes: AOF is written once a second, a replica lags), so that no message is sent twice; how
        many."""
        since = _wall_ms() - RECENT_JOURNAL_MS
        loop = asyncio.get_running_loop()
        recent = await loop.run_in_executor(None, sent_journal, self.settings, since)
        settled_ = await loop.run_in_executor(None, finished, self.settings, sms_message, since) if recent else set()
        restored = 0
        for mid, sent in recent.items():
            if await self.ledger.mark(mid) not in (None, "claimed"):  # a claim alone says less than the journal
                continue
            restored += 1
            if mid in settled_:  # its outcome is out: nothing more to wait for
                await self.ledger.set_mark(mid, "settled")
            else:  # asked of the provider (answer known or not): never again, its receipt settles it
                await self.ledger.await_receipt(sent, self.receipts.every_ms)
        stale = await self.ledger.give_back_stale(_wall_ms() - 60_000)
        if restored or stale:
            log.warning("%d message mark(s) put back from the durable ledger, %d left half-settled waiting again",
                        restored, stale)
        return restored

    async def look_for_receipts(self) -> None:
        """Pull the receipts due a look; fail the messages whose receipt is overdue."""
        for receipt in await self.provider.pull(await self.ledger.due(_wall_ms(), self.receipts.every_ms)):
            await self.settle(receipt)
        for sent in await self.ledger.overdue(_wall_ms() - int(self.receipts.timeout_s * 1000)):
            kept = await self.ledger.take(sent.message_id, _wall_ms())
            if kept is not None:
                await self._report_taken(sent.message_id, kept, False,
                                         f"no receipt within {self.receipts.timeout_s:.0f} s of the provider's "
                                         "acceptance")
        self.metrics.waiting.labels("receipt").set(await self.ledger.waiting_count())

    async def receipt_callback(self, request: web.Request) -> web.Response:
        """Jasmin's DLR: acknowledged once settled (or nothing to settle); refused while its send is unrecorded,
        so that Jasmin sends it again."""
        form = {**request.query, **{k: str(v) for k, v in (await request.post()).items()}}
        expected = callback_token(self.settings.sms_secret, form.get("message_id", ""))
        if not form.get("message_id") or not hmac.compare_digest(form.get("token", ""), expected):
            return web.Response(status=403, text="not a receipt of ours")
        receipt = receipt_of(form)
        if receipt is None:
            return web.Response(text=ACK)
        try:
            done = await self.settle(receipt)
        except REDIS_AWAY:
            done = None
        return web.Response(text=ACK) if done is not None else web.Response(status=503, text="not yet")


def redis_loss(settings: Settings, redis: Any, ledger: Ledger, receipts: ReceiptOptions, rebuild: bool) -> RedisLoss:
    """What rebuilds the adapter's Redis from Kafka: messages with an outcome, or asked of a provider (the durable
    ledger), are never sent again, and those without an outcome wait for their receipts again."""
    unsettled: dict[str, SmsSent] = {}  # from the durable ledger: asked of a provider, no outcome yet

    def collect() -> set[str]:
        done = finished(settings, sms_message)
        asked = sent_journal(settings)
        unsettled.clear()
        unsettled.update({m: s for m, s in asked.items() if m not in done})
        return done | set(asked)  # asked of a provider: never again

    async def remember(message_ids: set[str]) -> None:
        for message_id in message_ids & set(unsettled):  # never again; their receipts still settle them
            await ledger.await_receipt(unsettled[message_id], receipts.every_ms)
        async with redis.pipeline(transaction=False) as pipe:
            for message_id in message_ids - set(unsettled):
                pipe.set(done_key(settings.redis_prefix, message_id), "settled", ex=DONE_TTL_S, nx=True)
            await pipe.execute()

    return RedisLoss(redis, adapter_prefix(settings.redis_prefix), settings, collect, remember, log, rebuild)


async def run(settings: Settings, url: str, rate: float, clock: str = "wall", stop: asyncio.Event | None = None,
              metrics_port: int | None = None, rebuild: bool = False, receipts: ReceiptOptions = ReceiptOptions(),
              retry: RetryPolicy = RetryPolicy()) -> None:
    """Serve until `stop` is set (or forever); with `metrics_port`, /metrics on 127.0.0.1. What is parked is
    rebuilt from Kafka at start with `rebuild`, and whenever Redis is found to have lost it."""
    registry = CollectorRegistry()
    metrics = sms_metrics(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.bind_host, registry=registry)
    consumer = AIOKafkaConsumer(settings.topic("dispatch.sms"), **client_options(settings),
                                group_id=f"{settings.app_id}-sms-gateway", enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    redis = connect(settings.redis_url, **settings.redis_options())
    event_clock, now_ms = pick_clock(clock)
    bucket = TokenBucket(rate, max(1, int(rate)), time.monotonic, asyncio.sleep)
    parked, reminders = waiting_keys(settings.redis_prefix)
    ledger = Ledger(redis, settings.redis_prefix)
    loss = redis_loss(settings, redis, ledger, receipts, rebuild)
    commits = LaggingCommits()

    async def step(out: Deliveries, wait_ms: int) -> int:
        """One look at Kafka and at the parked messages; returns how long the next look may wait."""
        if await loss.check(consumer):
            commits.forget()
            return 0
        batches = await consumer.getmany(timeout_ms=wait_ms, max_records=100)
        wait_ms = 500
        for tp, messages in batches.items():
            for msg in messages:
                try:
                    task = decode_typed(SmsTask, msg.value)
                except InvalidRecord as exc:
                    dead = dead_letter("dispatch.sms", msg.partition, msg.offset, msg.key, msg.value, exc.reason,
                                       exc.field, msg.timestamp)
                    await producer.send_and_wait(settings.topic("deadletter"), encode(dead), key=msg.key)
                    continue
                event_clock.advance(task.ts)
                if task.message_id in loss.finished:  # settled before Redis lost its parked messages
                    continue
                mark = await ledger.mark(task.message_id)
                if mark not in (None, "claimed", "sending"):  # sent, settled, or its person erased
                    continue
                if mark == "sending":  # the adapter stopped while asking the provider: settled by send
                    await out.send(task)
                elif task.kind == "reminder":  # warnings first: reminders wait until none is waiting
                    await redis.zadd(reminders, {msg.value: task.not_before_ts})
                elif now_ms() < task.not_before_ts:
                    await redis.zadd(parked, {msg.value: task.not_before_ts})
                elif (again := await out.send(task)) is not None:  # throttled: parked until it may go
                    await redis.zadd(parked, {msg.value: again})
            commits.note(tp, messages[-1].offset + 1)
        due_offsets = commits.due()
        if due_offsets:
            await consumer.commit(due_offsets)
        due = await redis.zrangebyscore(parked, "-inf", now_ms(), start=0, num=50)
        for raw in due:
            again = await out.send(msgspec.json.decode(raw, type=SmsTask))
            if again is None:
                await redis.zrem(parked, raw)
            else:  # unless an erasure took it out meanwhile
                await redis.zadd(parked, {raw: again}, xx=True)
        metrics.waiting.labels("warning").set(await redis.zcard(parked))
        metrics.waiting.labels("reminder").set(await redis.zcard(reminders))
        await out.look_for_receipts()
        if due or not await _caught_up(consumer):
            return wait_ms
        for raw in await redis.zrangebyscore(reminders, "-inf", now_ms(), start=0, num=REMINDER_BATCH):
            again = await out.send(msgspec.json.decode(raw, type=SmsTask))
            if again is None:
                await redis.zrem(reminders, raw)
            else:
                await redis.zadd(reminders, {raw: again}, xx=True)
            wait_ms = 0  # more may be waiting: look for warnings without lingering
        return wait_ms

    await consumer.start()
    await producer.start()
    runner: web.AppRunner | None = None
    try:
        await loss.start(consumer, ["dispatch.sms"])
        async with aiohttp.ClientSession() as session:
            out = Deliveries(settings, make_provider(settings, session, url, receipts), producer, ledger, metrics,
                             bucket, retry, receipts, now_ms)
            if receipts.port:
                app = web.Application()
                app.add_routes([web.post("/receipts/jasmin", out.receipt_callback)])
                runner = web.AppRunner(app)
                await runner.setup()
                await web.TCPSite(runner, settings.bind_host, receipts.port).start()
            wait_ms, delay, restore = 500, 0.1, True
            while stop is None or not stop.is_set():
                try:
                    if restore:  # at start, and after Redis was away: it may have lost its last writes
                        await out.restore_recent()
                        restore = False
                    wait_ms = await step(out, wait_ms)
                    delay = 0.1
                except OUTAGE as exc:
                    # what was sent before the outage has its mark (put back from the durable ledger if Redis
                    # lost it), and a message marked is never sent again; a settlement the broker did not take
                    # went back to the waiting (`_report_taken`)
                    if not is_outage(exc):
                        raise
                    commits.forget()
                    restore = restore or isinstance(exc, REDIS_AWAY)
                    delay = await after_outage(consumer, exc, delay, log)
    finally:
        if runner is not None:
            await runner.cleanup()
        await consumer.stop()
        await producer.stop()
        await redis.aclose()
