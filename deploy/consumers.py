"""What the SMS adapter and the task feed share as Kafka consumers: reading again from the committed offsets, and
rebuilding what they keep in Redis from Kafka when Redis has lost it."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import redis.exceptions as redis_errors
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.config import Settings
from schemas.decode import InvalidRecord, decode_typed
from schemas.records import Outcome
from streams.kafka_io import partition_counts, read_to_end

REDIS_OUTAGE = (redis_errors.ConnectionError, redis_errors.TimeoutError)


async def after_redis_outage(consumer: AIOKafkaConsumer, exc: Exception, delay: float, log: Any) -> float:
    """Redis away (a restart): wait `delay`, then read again from the committed offsets; the next delay."""
    log.warning("Redis did not answer (%s); reading again from the committed offsets in %.1f s", exc, delay)
    await asyncio.sleep(delay)
    await rewind_to_committed(consumer)
    return min(delay * 2, 5.0)


async def rewind_to_committed(consumer: AIOKafkaConsumer) -> None:
    """Seek every assigned partition back to its committed offset (its start when nothing is committed), so what
    was read but not finished before an outage is read again."""
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)


def finished(settings: Settings, ident: Callable[[Outcome], str | None]) -> set[str]:
    """The ids (`ident` of each outcome: a task's or a message's) that have an outcome on `outcomes`: done, so a
    rebuild must not queue or send them again."""
    done = set()
    for msg in read_to_end(settings, settings.topic("outcomes")):
        try:
            key = ident(decode_typed(Outcome, msg.value))
        except InvalidRecord:
            continue
        if key:
            done.add(key)
    return done


class RedisLoss:
    """Notices that Redis lost what a service keeps there (a marker key gone: a restart without its AOF, a flush)
    and rebuilds it: every record of the service's topics read again from the start, minus those finished."""

    def __init__(self, redis: Any, marker: str, settings: Settings, ident: Callable[[Outcome], str | None],
                 log: Any, rebuild: bool = False) -> None:
        self._redis, self._marker, self._settings, self._ident, self._log = redis, marker, settings, ident, log
        self.finished: set[str] = set()
        self.pending = rebuild  # asked for (`--rebuild`), or Redis found without the marker

    async def start(self, consumer: AIOKafkaConsumer, logicals: list[str]) -> None:
        """At start: without the marker, a group that has committed offsets lost what Redis kept (a rebuild is
        due); one that has none is starting for the first time, and nothing was lost."""
        if self.pending or await self._redis.exists(self._marker):
            return
        counts = await asyncio.get_running_loop().run_in_executor(None, partition_counts, self._settings, logicals)
        partitions = [TopicPartition(self._settings.topic(t), p) for t, n in counts.items() for p in range(n)]
        if any([await consumer.committed(tp) is not None for tp in partitions]):
            self.pending = True
        else:
            await self._redis.set(self._marker, 1)

    async def check(self, consumer: AIOKafkaConsumer) -> bool:
        """Start a rebuild when Redis has lost the marker (or one was asked for); True when the consumer was sent
        back to the start (the caller reads on from there, skipping `finished`)."""
        self.pending = self.pending or not await self._redis.exists(self._marker)
        if not self.pending or not consumer.assignment():  # the group's first join comes with the first read
            return False
        loop = asyncio.get_running_loop()
        self.finished = await loop.run_in_executor(None, finished, self._settings, self._ident)
        for tp in consumer.assignment():
            await consumer.seek_to_beginning(tp)
        await self._redis.set(self._marker, 1)
        self.pending = False
        self._log.warning("rebuilding what Redis kept from Kafka: reading %s again from the start, %d finished "
                          "skipped", ", ".join(sorted({tp.topic for tp in consumer.assignment()})),
                          len(self.finished))
        return True
