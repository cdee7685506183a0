"""faust's consumer, with records of a stream partition handed on in offset order and no record skipped.

faust-streaming 0.15 takes a jump in the offsets it fetches for a gap in the topic, as compaction or transaction
markers leave, and acks the offsets in between (`Consumer._drain_messages`, `_add_gap`). But its fetcher also
jumps when it drops records itself: records fetched for a partition paused for recovery are discarded while the
fetch position moves past them, and a worker restarted mid-stream seeks to its committed offsets while a fetch
is under way. Those records were then committed without ever reaching an agent: the ten-kill fault test lost a
reverse-mining hit, two calls and one person, and commits stalled behind the hole for a minute before the jump
(faust-streaming issues 216 and 606 describe the same mechanism).

Here a jump in a stream partition is fetched again from the first missing offset. faust's `getmany` is ours with
one change, it notes the records it drops (`note_dropped`): a hole over them is never a gap. Only when the
broker, asked from the hole's start, skips to the same record twice in a row is it a real gap, acked as faust
would. A record whose hand-over a rebalance cut
off (faust then cancels it and moves on as if it had been handed) counts as not handed, so it is fetched again
too. Changelog topics (compacted) keep faust's own handling. Everything else is faust's `_drain_messages`.
A partition whose commit is held by a record handed on but never acknowledged (`faust_commit.py`) is fetched
again from its committed offset, as a restarted worker would. What is known of a partition is forgotten when it is
revoked: a partition that comes back (a takeover) was read meanwhile by another worker, from where it stood then.
A partition with no commit yet is sought to its start where faust seeks to the committed offsets: aiokafka leaves
it where its fetcher stood, past what faust dropped during a rebalance, and nothing would hold a commit over them.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from mode import Service


def _next(consumer: Any) -> dict[Any, int]:
    """The next offset each partition must hand on, once known (after a seek or a record)."""
    return cast(dict, consumer.__dict__.setdefault("_yujing_next", {}))


def _refetched(consumer: Any) -> dict[Any, tuple[int, int, int, int]]:
    """Partitions fetched again from an offset not yet reached: that offset, the fetch that found the hole, the
    first offset after it (-1: faust dropped the records in it) and how many times it was fetched again."""
    return cast(dict, consumer.__dict__.setdefault("_yujing_refetch", {}))


def _dropped(consumer: Any) -> dict[Any, int]:
    """Per partition, the first offset of records fetched and then dropped by faust's own `getmany` (a partition
    paused while its fetch was handed on, a rebalance or a stop of the flow in the middle of a fetch)."""
    return cast(dict, consumer.__dict__.setdefault("_yujing_dropped", {}))


def _fetch_again(consumer: Any) -> set[Any]:
    """Partitions to fetch again from their committed offset at the next round of the loop."""
    return cast(set, consumer.__dict__.setdefault("_yujing_fetch_again", set()))


def _at_committed(consumer: Any) -> dict[Any, Any]:
    """The record last handed on at each partition's committed offset (to say what became of it)."""
    return cast(dict, consumer.__dict__.setdefault("_yujing_at_committed", {}))


def fetch_again_from_committed(consumer: Any, tp: Any) -> str:
    """Have `tp` fetched again from its committed offset; returns what became of the record there, for the log."""
    _fetch_again(consumer).add(tp)
    committed = consumer._committed_offset.get(tp)
    message = _at_committed(consumer).get(tp)
    if message is None or message.offset != committed:
        return "never handed on"
    return f"handed on (references left {message.refcount}, acknowledged {message.acked})"


async def _seek_back(consumer: Any) -> None:
    """Seek the partitions marked to be fetched again (that are still ours) to their committed offsets."""
    again = _fetch_again(consumer)
    while again:
        tp = again.pop()
        committed = consumer._committed_offset.get(tp)
        if committed is not None and tp in consumer.assignment():
            await consumer.seek(tp, committed)


def _batch(consumer: Any) -> int:
    """Which fetch the records now handed on come from (one per round of faust's loop)."""
    return int(consumer.__dict__.get("_yujing_batch", 0))


STUCK_ROUNDS = 5  # a partition fetched again this often from one offset is stuck there: logged as an error


async def in_order(consumer: Any, tp: Any, offset: int) -> bool:
    """Whether to hand this record on: the next one of its partition, or past a gap the broker confirmed.

    A hole over records faust itself dropped is never a gap. Otherwise a gap is confirmed only when two fetches
    in a row, each after a seek to its start, skip to the same record."""
    if tp.topic.endswith("-changelog"):
        return True
    expected = _next(consumer).get(tp)
    if expected is None or offset == expected:
        _refetched(consumer).pop(tp, None)
        if _dropped(consumer).get(tp, offset + 1) <= offset:
            del _dropped(consumer)[tp]  # read again since: what was dropped is handed on now
        return True
    if offset < expected:
        return False  # read again after a seek back: handed on already
    again = _refetched(consumer).get(tp)
    if again is not None and again[0] == expected and again[1] == _batch(consumer):
        return False  # the rest of the fetch that had the hole
    ours = _dropped(consumer).pop(tp, None) is not None
    if again is not None and again[0] == expected:
        if offset == again[2] and not ours:
            # fetched again from there, and the broker skips it again: compaction or transaction markers
            _refetched(consumer).pop(tp, None)
            consumer.log.warning("Gap in %r from %r to %r (compaction or transaction markers)",
                                 tp, expected, offset - 1)
            await consumer._add_gap(tp, expected, offset - 1)
            return True
    if tp not in consumer.assignment():
        return False  # revoked meanwhile: whoever holds it now reads from the committed offset
    rounds = again[3] + 1 if again is not None and again[0] == expected else 1
    log = consumer.log.warning if rounds < STUCK_ROUNDS else consumer.log.error
    log("Fetched %r at %r, expected %r: fetching again from %r (round %d)", tp, offset, expected, expected, rounds)
    _refetched(consumer)[tp] = (expected, _batch(consumer), -1 if ours else offset, rounds)
    await consumer.seek(tp, expected)
    return False


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # pragma: no cover (faust's)
    """faust's `Consumer.getmany`, noting the records it drops (`_dropped`)."""
    records, active_partitions = await self._wait_next_records(timeout)
    generation_id = self.app.consumer_generation_id
    if records is None or self.should_stop:
        return
    yielded: dict[Any, int] = {}
    try:
        if self.flow_active:
            for tp, record in self.scheduler.iterate(records):
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    yielded[tp] = record.offset
                    yield tp, self._to_message(tp, record)
                else:  # paused: dropped, though the next record of the fetch may be handed on
                    note_dropped(self, {tp: [record.offset]}, {})
        else:
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
    finally:
        note_dropped(self, {tp: [r.offset for r in recs] for tp, recs in records.items()}, yielded)


def note_dropped(consumer: Any, fetched: Mapping[Any, list[int]], yielded: Mapping[Any, int]) -> None:
    """After a fetch was handed on: remember, per partition, the first offset of the records not handed on."""
    dropped = _dropped(consumer)
    for tp, offsets in fetched.items():
        last = yielded.get(tp)
        left = [o for o in offsets if last is None or o > last]
        if left:
            dropped[tp] = min(dropped.get(tp, left[0]), left[0])


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover (faust's loop, run by its fetcher)
    callback = self.callback
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            await _seek_back(self)
            ait = cast(AsyncIterator, _getmany(self, timeout=1.0))
            self.__dict__["_yujing_batch"] = _batch(self) + 1
            await self.sleep(0)  # getmany may be called in a loop that never yields otherwise
            if not self.should_stop:
                async for tp, message in ait:
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    if not await in_order(self, tp, message.offset):
                        continue
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    handed = callback(message)
                    waited = await self.wait_first(handed, self.suspend_flow.wait())
                    if handed not in waited.done:
                        # a rebalance began first and the hand-over was cancelled: this record is fetched again
                        self.log.info("Hand-over of %r at %r cut off by a rebalance", tp, message.offset)
                        continue
                    self._read_offset[tp] = message.offset
                    _next(self)[tp] = message.offset + 1
                    if message.offset == self._committed_offset.get(tp):
                        _at_committed(self)[tp] = message
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


_faust_seek = Consumer.seek
_faust_seek_to_committed = AIOKafkaConsumer.seek_to_committed
_faust_on_partitions_revoked = Consumer.on_partitions_revoked


async def _seek(self: Any, partition: Any, offset: int) -> None:
    await _faust_seek(self, partition, offset)
    _next(self)[partition] = offset


def never_committed(committed: Mapping[Any, int | None]) -> list[Any]:
    """The stream partitions (not changelogs) with no committed offset to seek to: none, or 0, which aiokafka's
    `seek_to_committed` does not seek to either."""
    return [tp for tp, offset in committed.items()
            if (offset is None or offset <= 0) and not tp.topic.endswith("-changelog")]


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    committed = await _faust_seek_to_committed(self)
    # A partition with no commit is not sought at all: its fetcher stays past the records faust dropped while the
    # flow was stopped (a rebalance), and those would never reach an agent, nor hold a commit (there is no
    # committed offset to hold it at). Read from the start, as the offset reset would for a new partition.
    unread = never_committed(committed) if self.app.conf.consumer_auto_offset_reset == "earliest" else []
    if unread:
        await self._thread.seek_to_beginning(*unread)
    for tp, offset in committed.items():
        if offset is not None and offset >= 0:
            _next(self)[tp] = offset
        else:
            _next(self).pop(tp, None)
        _refetched(self).pop(tp, None)
        _dropped(self).pop(tp, None)
    for tp in unread:  # a fetch from before the seek may still hand on records: they are not the next ones
        _next(self)[tp] = await self._thread.position(tp)
    return committed


def forget(consumer: Any, revoked: Any) -> None:
    """Partitions left this consumer: what it knew of them is stale if they come back (from whoever held them
    meanwhile, at their committed offset). A record fetched for one before faust seeks it to its committed offset
    (or its start, `_seek_to_committed`) is handed on, and again after the seek: a redelivery, which every stage
    takes as one."""
    for tp in revoked:
        for known in (_next(consumer), _refetched(consumer), _at_committed(consumer), _dropped(consumer)):
            known.pop(tp, None)
        _fetch_again(consumer).discard(tp)


async def _on_partitions_revoked(self: Any, revoked: Any) -> None:
    forget(self, revoked)
    await _faust_on_partitions_revoked(self, revoked)


def hand_on_in_order() -> None:
    """Install the order in faust's consumer (idempotent)."""
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = _on_partitions_revoked  # type: ignore[method-assign]
    Consumer.seek = _seek  # type: ignore[method-assign]
    AIOKafkaConsumer.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
