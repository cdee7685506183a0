"""`yujing task-feed`: load `dispatch.visit` and `dispatch.phone` into the Redis task queues; serve the feed API.

The loader is at-least-once with idempotent effects: a task is queued (once per `task_id`, see
`TaskQueues.add`), and its offset committed a few seconds later (once Redis's AOF has it on disk), so a restart
re-reads at most a few seconds of tasks and queues none twice. Reports go to `outcomes` with acks=all before the
task is marked done. When Redis has lost a partition's queues (its marker key gone: a Redis without its data),
the partition is read again from the start and every task queued unless `outcomes` holds its report.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.config import Settings
from deploy.consumers import OUTAGE, LaggingCommits, RedisLoss, after_outage, finished, is_outage
from deploy.redis_client import connect
from dispatch.clock import pick_clock
from dispatch.task_feed_api import build_app
from dispatch.task_queue import TaskQueues
from dispatch.task_queue import feed_prefix as queues_prefix
from dispatch.tasks import queue_of
from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_typed
from schemas.records import Outcome, PhoneTask, VisitTask, encode
from streams.kafka_security import client_options

log = logging.getLogger(__name__)
TASK_TYPES: dict[str, type[PhoneTask] | type[VisitTask]] = {"dispatch.phone": PhoneTask, "dispatch.visit": VisitTask}
TASK_CHANNELS = ("phone", "visit")  # the outcomes a task's report carries


def feed_prefix(settings: Settings) -> str:
    """The Redis key prefix of the task feed (one hash slot: `dispatch.task_queue.feed_prefix`)."""
    return queues_prefix(settings.redis_prefix)


async def run(settings: Settings, port: int, clock: str = "wall", claim_timeout_s: float = 1800.0,
              stop: asyncio.Event | None = None, rebuild: bool = False) -> None:
    """Load tasks and serve the API on 127.0.0.1:`port` until `stop` is set (or forever); the queues are rebuilt
    from Kafka at start with `rebuild`, and whenever Redis is found to have lost them."""
    by_topic = {settings.topic(logical): logical for logical in TASK_TYPES}
    consumer = AIOKafkaConsumer(*by_topic, **client_options(settings),
                                group_id=f"{settings.app_id}-task-feed", enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    redis = connect(settings.redis_url, **settings.redis_options())
    queues = TaskQueues(redis, feed_prefix(settings), int(claim_timeout_s * 1000))
    event_clock, now_ms = pick_clock(clock)

    async def write_outcome(outcome: Outcome) -> None:
        await producer.send_and_wait(settings.topic("outcomes"), encode(outcome), key=outcome.warning_id.encode())
        log.info("task %s: %s", outcome.task_id, outcome.outcome)

    await consumer.start()
    await producer.start()
    runner = web.AppRunner(build_app(queues, write_outcome, now_ms), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, port).start()
    log.info("task feed on http://%s:%d/v1/tasks", settings.bind_host, port)
    loss = RedisLoss(redis, feed_prefix(settings), settings,
                     lambda: finished(settings, lambda o: o.task_id if o.channel in TASK_CHANNELS else None),
                     queues.mark_finished, log, rebuild)
    commits = LaggingCommits()

    async def step() -> None:
        if await loss.check(consumer):
            commits.forget()
            return
        batches = await consumer.getmany(timeout_ms=500, max_records=500)
        for tp, messages in batches.items():
            logical = by_topic[tp.topic]
            for msg in messages:
                try:
                    task = decode_typed(TASK_TYPES[logical], msg.value)
                except InvalidRecord as exc:
                    dead = dead_letter(logical, msg.partition, msg.offset, msg.key, msg.value, exc.reason,
                                       exc.field, msg.timestamp)
                    await producer.send_and_wait(settings.topic("deadletter"), encode(dead), key=msg.key)
                    continue
                event_clock.advance(task.ts)
                await queues.add(queue_of(task), task.task_id, msg.value)  # a finished one is not queued again
            commits.note(tp, messages[-1].offset + 1)
        due = commits.due()
        if due:
            await consumer.commit(due)

    try:
        await loss.start(consumer, list(TASK_TYPES))
        delay = 0.1
        while stop is None or not stop.is_set():
            try:
                await step()
                delay = 0.1
            except OUTAGE as exc:  # adding a task is idempotent: none queued twice by reading again
                if not is_outage(exc):
                    raise
                commits.forget()
                delay = await after_outage(consumer, exc, delay, log)
    finally:
        await runner.cleanup()
        await consumer.stop()
        await producer.stop()
        await redis.aclose()
