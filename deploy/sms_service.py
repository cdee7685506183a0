"""`yujing sms-gateway`: consume `dispatch.sms`, deliver through the HTTP gateway, write receipts to `outcomes`.

At-least-once with idempotent effects: a receipt is produced (acks=all), the message is marked done in Redis,
and only then is the offset committed. After a crash the message may be read again: a done mark skips it;
without one it is sent again under the same `message_id`, which the gateway does not deliver twice.

A message not due yet (a warning held by quiet hours) must not hold up the others: it is parked in a Redis
sorted set under its `not_before_ts` (then its offset is committed), and delivered when the clock reaches it;
it leaves the set only after its receipt is written. Reminder campaigns' messages are parked the same way in a
set of their own, and sent (a few at a time, within the same rate limit) only while no warning is due or
unread in Kafka: a campaign of millions never delays a warning by more than one small batch.

Offsets are committed a few seconds after their effects (once Redis's AOF has them on disk). When Redis has lost
what it kept for a partition (its marker key gone: a Redis without its data), the partition is read again from
the start, and every message parked or sent unless `outcomes` holds its receipt.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry, start_http_server

from deploy.config import Settings
from deploy.consumers import REDIS_OUTAGE, LaggingCommits, RedisLoss, after_redis_outage
from dispatch.clock import pick_clock
from dispatch.metrics import sms_metrics
from dispatch.sms import (
    DONE_TTL_S,
    HttpGateway,
    RetryPolicy,
    TokenBucket,
    adapter_prefix,
    deliver,
    done_key,
    waiting_keys,
)
from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_typed
from schemas.records import SmsTask, encode
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


async def run(settings: Settings, url: str, rate: float, clock: str = "wall", stop: asyncio.Event | None = None,
              metrics_port: int | None = None, rebuild: bool = False) -> None:
    """Serve until `stop` is set (or forever); with `metrics_port`, /metrics on 127.0.0.1. What is parked is
    rebuilt from Kafka at start with `rebuild`, and whenever Redis is found to have lost it."""
    registry = CollectorRegistry()
    metrics = sms_metrics(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.bind_host, registry=registry)
    consumer = AIOKafkaConsumer(settings.topic("dispatch.sms"), **client_options(settings),
                                group_id=f"{settings.app_id}-sms-gateway", enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    redis = aioredis.Redis.from_url(settings.redis_url, **settings.redis_options())
    event_clock, now_ms = pick_clock(clock)
    bucket = TokenBucket(rate, max(1, int(rate)), time.monotonic, asyncio.sleep)
    prefix = adapter_prefix(settings.redis_prefix)
    parked, reminders = waiting_keys(settings.redis_prefix)

    async def send(task: SmsTask, gateway: HttpGateway) -> None:
        if await redis.exists(done_key(settings.redis_prefix, task.message_id)):
            return  # delivered and receipted before a restart
        receipt = await deliver(task, gateway, bucket, RetryPolicy(), now_ms, asyncio.sleep)
        await producer.send_and_wait(settings.topic("outcomes"), encode(receipt), key=task.warning_id.encode())
        await redis.set(done_key(settings.redis_prefix, task.message_id), receipt.outcome, ex=DONE_TTL_S)
        metrics.deliveries.labels(task.kind, receipt.outcome).inc()
        log.info("%s %s: %s", task.message_id, receipt.outcome, receipt.note)

    async def remember(message_ids: set[str]) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for message_id in message_ids:
                pipe.set(done_key(settings.redis_prefix, message_id), "receipted", ex=DONE_TTL_S, nx=True)
            await pipe.execute()

    loss = RedisLoss(redis, prefix, settings, lambda o: o.message_id if o.channel == "sms" else None, remember, log,
                     rebuild)
    commits = LaggingCommits()

    async def step(gateway: HttpGateway, wait_ms: int) -> int:
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
                if task.message_id in loss.finished:  # receipted before Redis lost its parked messages
                    continue
                if await redis.exists(done_key(settings.redis_prefix, task.message_id)):  # sent, or its person erased
                    continue
                if task.kind == "reminder":  # warnings first: reminders wait until none is waiting
                    await redis.zadd(reminders, {msg.value: task.not_before_ts})
                elif now_ms() < task.not_before_ts:
                    await redis.zadd(parked, {msg.value: task.not_before_ts})
                else:
                    await send(task, gateway)
            commits.note(tp, messages[-1].offset + 1)
        due_offsets = commits.due()
        if due_offsets:
            await consumer.commit(due_offsets)
        due = await redis.zrangebyscore(parked, "-inf", now_ms(), start=0, num=50)
        for raw in due:
            await send(msgspec.json.decode(raw, type=SmsTask), gateway)
            await redis.zrem(parked, raw)
        metrics.waiting.labels("warning").set(await redis.zcard(parked))
        metrics.waiting.labels("reminder").set(await redis.zcard(reminders))
        if due or not await _caught_up(consumer):
            return wait_ms
        for raw in await redis.zrangebyscore(reminders, "-inf", now_ms(), start=0, num=REMINDER_BATCH):
            await send(msgspec.json.decode(raw, type=SmsTask), gateway)
            await redis.zrem(reminders, raw)
            wait_ms = 0  # more may be waiting: look for warnings without lingering
        return wait_ms

    await consumer.start()
    await producer.start()
    try:
        await loss.start(consumer, ["dispatch.sms"])
        async with aiohttp.ClientSession() as session:
            gateway = HttpGateway(session, url)
            wait_ms, delay = 500, 0.1
            while stop is None or not stop.is_set():
                try:
                    wait_ms = await step(gateway, wait_ms)
                    delay = 0.1
                except REDIS_OUTAGE as exc:
                    # what was done before the outage has its done mark, and the gateway never delivers one
                    # message_id twice
                    commits.forget()
                    delay = await after_redis_outage(consumer, exc, delay, log)
    finally:
        await consumer.stop()
        await producer.stop()
        await redis.aclose()
