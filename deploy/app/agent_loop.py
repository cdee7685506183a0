"""The loop every agent runs: each record through its handler, outputs sent, failures dead-lettered, Redis waited for.

A failure on one record dead-letters that record and nothing else: the stream goes on. Redis being away is not
a failure of the record: the agent waits for it (its partitions' lag grows, faust stops fetching once its buffer
is full) and runs the step again, which is safe because every Redis step is idempotent (cooldown, escalation and
board writes are keyed by warning id). A send the producer refuses (no metadata, a full buffer) is tried again
the same way. A record is acknowledged only once its outputs are sent: faust acknowledges it when the agent
moves on, also when the agent failed or was cancelled on it, and the commit then passes a record never handled.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, AsyncIterator, Awaitable, Callable

from faust.exceptions import ProducerSendError

from dispatch.stage import REDIS_AWAY
from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord
from schemas.internal import Output

log = logging.getLogger(__name__)

Handler = Callable[[Any], "list[Output] | Awaitable[list[Output]]"]
Sleep = Callable[[float], Awaitable[None]]


async def until_answered(what: str, step: Callable[[], Any], who: str, down: tuple[type[BaseException], ...],
                         on_retry: Callable[[], None] = lambda: None, sleep: Sleep = asyncio.sleep,
                         first_delay: float = 0.1, max_delay: float = 5.0) -> Any:
    """Run `step` (sync or async) until `who` answers (no error of `down`), backing off from `first_delay` to
    `max_delay` seconds."""
    delay = first_delay
    while True:
        try:
            result = step()
            return await result if inspect.isawaitable(result) else result
        except down as exc:
            on_retry()
            log.warning("%s: %s did not answer (%s); again in %.1f s", what, who, exc, delay)
            await sleep(delay)
            delay = min(delay * 2, max_delay)


async def until_redis_answers(what: str, step: Callable[[], Any], on_retry: Callable[[], None] = lambda: None,
                              sleep: Sleep = asyncio.sleep, first_delay: float = 0.1, max_delay: float = 5.0) -> Any:
    """Run `step` until Redis answers (see `until_answered`)."""
    return await until_answered(what, step, "Redis", REDIS_AWAY, on_retry, sleep, first_delay, max_delay)


async def until_broker_takes(what: str, send: Callable[[], Awaitable[Any]], sleep: Sleep = asyncio.sleep) -> Any:
    """Run `send` until the producer takes the record (delivery itself is awaited by the flush before a commit)."""
    return await until_answered(what, send, "the broker", (ProducerSendError,), sleep=sleep)


def dead_output(logical: str, key: bytes | None, value: bytes | None, partition: int, offset: int,
                timestamp_s: float | None, reason: str, field: str | None = None) -> Output:
    """The dead letter that replaces one record, keyed as the record was."""
    kafka_ts = int(timestamp_s * 1000) if timestamp_s else None
    return Output("deadletter", key or b"",
                  dead_letter(logical, partition, offset, key, value, reason, field, kafka_ts))


async def handle_one(logical: str, event: Any, handler: Handler, on_redis_retry: Callable[[], None] = lambda: None,
                     sleep: Sleep = asyncio.sleep) -> list[Output]:
    """The outputs of one record: its handler's, or its dead letter when the handler refused or failed on it."""
    try:
        return await until_redis_answers(logical, lambda: handler(event), on_redis_retry, sleep)
    except Exception as exc:
        return refused(logical, event, exc)


def handle_now(logical: str, event: Any, handler: Callable[[Any], list[Output]]) -> list[Output]:
    """As `handle_one`, for a handler that needs no Redis (the hot path's stages)."""
    try:
        return handler(event)
    except Exception as exc:
        return refused(logical, event, exc)


def refused(logical: str, event: Any, exc: Exception) -> list[Output]:
    """The dead letter of a record its handler refused (`InvalidRecord`) or failed on (a bug: logged too)."""
    msg = event.message
    if isinstance(exc, InvalidRecord):
        return [dead_output(logical, event.key, event.value, msg.partition, msg.offset, msg.timestamp,
                            exc.reason, exc.field)]
    # a bug on one record must not stop the stream
    log.error("%s failed on partition %s offset %s", logical, msg.partition, msg.offset, exc_info=exc)
    return [dead_output(logical, event.key, event.value, msg.partition, msg.offset, msg.timestamp,
                        f"internal error: {type(exc).__name__}: {exc}"[:500])]


@dataclass
class AgentLoop:
    """One agent: records in, `handler` on each, outputs sent; hooks hear of each record and what it sent."""

    logical: str
    handler: Handler
    send: Callable[[list[Output], float | None], Awaitable[None]]
    counted: Callable[[Any], None] = lambda event: None  # a record read (the metrics count it)
    sent: Callable[[Any, list[Output]], None] | None = None  # its outputs are sent (the channel's progress)
    observed: Callable[[list[Output], float | None], None] = lambda outputs, origin: None  # the metrics
    show: Callable[[list[Output]], Awaitable[None]] | None = None  # the console's board (Redis)
    on_redis_retry: Callable[[], None] = lambda: None
    # Records in progress at once, one at a time per key (a person's decisions in order): a record waits at each
    # Redis round trip, and those of different keys need not wait for each other.
    parallel: int = 1
    # A record that waits for every record before it in its partition, and every one after it for it (the decider's
    # progress: what it releases goes out after the decisions below it and before those above)
    barrier: Callable[[Any], bool] = lambda event: False

    async def __call__(self, stream: Any) -> None:
        """Run over a faust stream of events (the agent's body), acknowledging each once its outputs are sent."""
        if self.parallel <= 1:
            async for event in stream.noack().events():
                await self.one(event)
                event.ack()
            return
        await self.by_key(stream.noack().events())

    async def by_key(self, events: AsyncIterator[Any]) -> None:
        """Up to `parallel` events at once, in order per key and around each barrier of their partition;
        acknowledged in the order they came in their partition once their outputs are sent (faust_commit.py holds
        a commit at an event not acknowledged while later ones are). A failure fails the agent, as in a sequential
        one."""
        window = asyncio.Semaphore(self.parallel)  # events not yet acknowledged
        arrived: dict[Any, deque[list[Any]]] = {}  # per partition, [event, handled] in the order they came
        last: dict[Any, asyncio.Task] = {}  # per key, its latest event's task
        fence: dict[Any, asyncio.Task] = {}  # per partition, its latest barrier's task
        running: dict[Any, set[asyncio.Task]] = {}  # per partition, the tasks not done
        failed: list[BaseException] = []
        parent = asyncio.current_task()

        async def after(before: set[asyncio.Task], entry: list[Any], queue: deque[list[Any]]) -> None:
            if before:
                await asyncio.wait(before)
            await self.one(entry[0])
            entry[1] = True
            while queue and queue[0][1]:
                queue.popleft()[0].ack()
                window.release()

        def done(key: Any, tp: Any, task: asyncio.Task) -> None:
            running[tp].discard(task)
            if last.get(key) is task:
                del last[key]
            if fence.get(tp) is task:
                del fence[tp]
            if not task.cancelled() and task.exception() is not None:
                failed.append(task.exception())  # type: ignore[arg-type]
                if len(failed) == 1 and parent is not None:
                    parent.cancel()  # it may be waiting for a slot or an event: neither comes after a failure

        try:
            async for event in events:
                await window.acquire()
                entry = [event, False]
                tp = event.message.tp
                queue = arrived.setdefault(tp, deque())
                barrier = self.barrier(event)
                before = set(running.get(tp, ())) if barrier else \
                    {t for t in (last.get(event.key), fence.get(tp)) if t is not None}
                queue.append(entry)
                task = asyncio.create_task(after(before, entry, queue))
                if barrier:
                    fence[tp] = task
                last[event.key] = task
                running.setdefault(tp, set()).add(task)
                task.add_done_callback(partial(done, event.key, tp))
            left = set().union(*running.values())
            if left:
                await asyncio.wait(left)
        except asyncio.CancelledError:
            if failed:
                raise failed[0] from None
            raise
        finally:  # stopped: what is not done is not acknowledged, and is read again
            for task in set().union(*running.values()):
                task.cancel()
        if failed:
            raise failed[0]

    async def one(self, event: Any) -> list[Output]:
        """Process one event to the end; returns what it sent."""
        self.counted(event)
        outputs = await handle_one(self.logical, event, self.handler, self.on_redis_retry)
        origin = event.message.timestamp or None
        await self.send(outputs, origin)
        if self.sent is not None:
            self.sent(event.message, outputs)
        self.observed(outputs, origin)
        if self.show is not None:
            show = self.show
            await until_redis_answers("console board", lambda: show(outputs), self.on_redis_retry)
        return outputs
