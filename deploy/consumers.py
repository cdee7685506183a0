"""What the SMS adapter and the task feed share as Kafka consumers: offsets committed only once Redis has had time
to keep their effects, reading again from there after an outage, and rebuilding from Kafka what Redis lost."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from kafka.errors import KafkaError as ReaderKafkaError  # kafka-python's: the readers run in a thread (iter_to_end)
from kafka.errors import KafkaTimeoutError as ReaderKafkaTimeoutError

from deploy.config import Settings
from dispatch.stage import REDIS_AWAY
from schemas.decode import InvalidRecord, decode_typed
from schemas.records import Outcome
from streams.kafka_io import iter_to_end, partition_counts

OUTAGE = (*REDIS_AWAY, KafkaError, ReaderKafkaError)  # caught, then told apart by `is_outage`
BROKER_ERRORS = (KafkaError, ReaderKafkaError)
# Redis writes its AOF to disk every second (appendfsync everysec) and may lose the last one or two in a crash:
# an offset is committed only once what it did in Redis is older than that, so a restart reads it again.
COMMIT_LAG_S = 3.0


class LaggingCommits:
    """The offsets to commit, each once `lag_s` has passed since it was noted (the clock handed in)."""

    def __init__(self, lag_s: float = COMMIT_LAG_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.lag_s, self._clock = lag_s, clock
        self._noted: list[tuple[float, TopicPartition, int]] = []

    def note(self, tp: TopicPartition, offset: int) -> None:
        """`offset` (the next to read) may be committed for `tp` once the lag has passed."""
        self._noted.append((self._clock(), tp, offset))

    def due(self, everything: bool = False) -> dict[TopicPartition, int]:
        """The latest offset per partition noted at least the lag ago (or all of them), and forget those."""
        cut = float("inf") if everything else self._clock() - self.lag_s
        ready = [n for n in self._noted if n[0] <= cut]
        self._noted = [n for n in self._noted if n[0] > cut]
        out: dict[TopicPartition, int] = {}
        for _, tp, offset in ready:
            out[tp] = max(offset, out.get(tp, offset))
        return out

    def forget(self) -> None:
        """Drop what was noted (the consumer was sent back: those offsets will be read again)."""
        self._noted.clear()


def is_outage(exc: BaseException) -> bool:
    """Redis away, or a Kafka error a broker's restart explains (retriable, or a wait for the broker timed out)."""
    if isinstance(exc, BROKER_ERRORS):
        return exc.retriable or isinstance(exc, (KafkaTimeoutError, ReaderKafkaTimeoutError))
    return isinstance(exc, REDIS_AWAY)


async def after_outage(consumer: AIOKafkaConsumer, exc: Exception, delay: float, log: Any) -> float:
    """Redis or the broker away (a restart): wait `delay`, then read again from the committed offsets (waiting on
    while the broker cannot say them); the next delay."""
    who = "the broker" if isinstance(exc, BROKER_ERRORS) else "Redis"
    log.warning("%s did not answer (%r); reading again from the committed offsets in %.1f s", who, exc, delay)
    while True:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
        try:
            await rewind_to_committed(consumer)
            return delay
        except KafkaError as again:
            if not is_outage(again):
                raise
            log.warning("the broker did not answer (%r); trying again in %.1f s", again, delay)


async def rewind_to_committed(consumer: AIOKafkaConsumer) -> None:
    """Seek every assigned partition back to its committed offset (its start when nothing is committed), so what
    was read but not finished before an outage is read again."""
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)


def finished(settings: Settings, ident: Callable[[Outcome], str | None], since_ms: int | None = None) -> set[str]:
    """The ids (`ident` of each outcome: a task's or a message's) that have an outcome on `outcomes` (written since
    `since_ms`, or ever): done, so a rebuild must not queue or send them again. Read to the end or `TimeoutError`:
    a part would resend."""
    done = set()
    for msg in iter_to_end(settings, settings.topic("outcomes"), since_ms=since_ms):
        try:
            key = ident(decode_typed(Outcome, msg.value))
        except InvalidRecord:
            continue
        if key:
            done.add(key)
    return done


class RedisLoss:
    """Notices, partition by partition, that Redis lost what a service keeps there (the partition's marker key
    gone: a restart without its data, a flush) and rebuilds it: the partition read again from its start, and what
    `collect` finds done in Kafka (an outcome on `outcomes`, say) marked finished in Redis first (so a crash or
    another replica does not redo it).
    A partition's marker is written back only once its reading has passed the end it had when the rebuild began,
    so a crash half-way rebuilds it again."""

    def __init__(self, redis: Any, prefix: str, settings: Settings, collect: Callable[[], set[str]],
                 remember: Callable[[set[str]], Awaitable[None]], log: Any, rebuild: bool = False) -> None:
        self._redis, self._prefix, self._settings, self._log = redis, prefix, settings, log
        self._collect, self._remember, self._rebuild = collect, remember, rebuild
        self.finished: set[str] = set()
        self._ends: dict[TopicPartition, int] = {}  # partitions being rebuilt: the end to pass

    def _marker(self, tp: TopicPartition) -> str:
        return f"{self._prefix}loaded:{tp.topic}:{tp.partition}"

    async def start(self, consumer: AIOKafkaConsumer, logicals: list[str]) -> None:
        """At start: a partition with no committed offset has lost nothing (mark it loaded); with `rebuild`,
        every partition is rebuilt."""
        counts = await asyncio.get_running_loop().run_in_executor(None, partition_counts, self._settings, logicals)
        for tp in [TopicPartition(self._settings.topic(t), p) for t, n in counts.items() for p in range(n)]:
            if self._rebuild:
                await self._redis.delete(self._marker(tp))
            elif await consumer.committed(tp) is None:
                await self._redis.set(self._marker(tp), 1, nx=True)

    async def check(self, consumer: AIOKafkaConsumer) -> bool:
        """Before a read: finish the rebuilds that have passed their ends, and start one for every assigned
        partition without its marker; True when partitions were sent back to their start."""
        assigned = consumer.assignment()
        for tp, end in list(self._ends.items()):
            if tp not in assigned:
                del self._ends[tp]  # rebalanced away: its new owner finds no marker and rebuilds it
            elif await consumer.position(tp) >= end:
                await self._redis.set(self._marker(tp), 1)
                del self._ends[tp]
        candidates = sorted((tp for tp in assigned if tp not in self._ends), key=lambda tp: (tp.topic, tp.partition))
        markers = await self._redis.mget([self._marker(tp) for tp in candidates]) if candidates else []
        lost = [tp for tp, marker in zip(candidates, markers) if marker is None]
        if not lost:
            return False
        loop = asyncio.get_running_loop()
        self.finished = await loop.run_in_executor(None, self._collect)
        await self._remember(self.finished)
        ends = await consumer.end_offsets(lost)
        for tp in lost:
            await consumer.seek_to_beginning(tp)
            self._ends[tp] = ends[tp]
        self._log.warning("rebuilding what Redis kept from Kafka: %s read again from the start, %d finished "
                          "marked first", ", ".join(f"{tp.topic}/{tp.partition}" for tp in lost), len(self.finished))
        return True
