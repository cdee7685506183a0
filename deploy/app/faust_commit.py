"""faust's offset commit: only over records processed, and only once their table writes are sent.

Table writes (every person, value, pending and marks update) go to their changelogs through faust's
`ProducerBuffer`. Before committing offsets faust flushes that buffer (`Consumer._commit_offsets` →
`Producer.flush`), but `ProducerBuffer.flush` gives up as soon as one message takes longer than 0.1 s to go out
(`flush_atmost`: a timeout returns), which a loaded worker often does, and it counts as flushed a message taken
off the buffer but not yet handed to the Kafka producer. The offsets were then committed while writes still
waited, and a worker killed then lost the state of records it would never read again: the ten-kill fault test
lost one person's incoming payments so. Here the flush waits until the buffer is empty and nothing is between
the buffer and the producer, as Kafka Streams flushes its producer before it commits.

Which offset to commit faust takes from the run of acknowledged offsets (`Consumer._new_offset`), and it checks
that the run starts at the committed offset with `min(acked) - committed > 1`: one record at the head that was
never acknowledged is committed past (the committed offset is the next record to read, not the last one read).
Here the run must start at the committed offset. Agents acknowledge in offset order, so a hole at the head is a
record that left the stream unprocessed: the commit is held, logged, and the partition fetched again from the
committed offset (`faust_offsets.fetch_again_from_committed`), as a restarted worker would read it.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.transport.consumer import Consumer
from faust.transport.producer import ProducerBuffer
from faust.utils.functional import consecutive_numbers

from deploy.app.faust_offsets import _dropped, _next, fetch_again_from_committed

_faust_send_pending = ProducerBuffer._send_pending
_faust_new_offset = Consumer._new_offset
FETCH_AGAIN_AFTER_S = 30.0  # a partition fetched again and still held at the same record is fetched again after
STALLED_AFTER_S = 30.0  # records past the committed offset, none acknowledged nor in an agent, this long: stalled


def _sending(buffer: Any) -> int:
    return int(buffer.__dict__.get("_yujing_sending", 0))


async def _send_pending(self: Any, fut: Any) -> None:
    """faust's, counted while under way (from when it leaves the buffer to when the producer has it)."""
    self.__dict__["_yujing_sending"] = _sending(self) + 1
    try:
        await _faust_send_pending(self, fut)
    finally:
        self.__dict__["_yujing_sending"] = _sending(self) - 1


async def _flush(self: Any) -> None:
    """Flush all messages: until the buffer is empty and none is on its way to the producer."""
    while self.size or _sending(self):
        if self.size:
            await self.flush_atmost(None)
        else:
            await asyncio.sleep(0.001)


def _new_offset(self: Any, tp: Any) -> int | None:
    """The offset to commit for `tp`: past the acknowledged run that starts at the committed offset, if any."""
    acked = self._acked[tp]
    if not acked:
        return None
    gaps = self._gap[tp]  # offsets the broker skips (compaction, transaction markers) count as acknowledged
    if gaps:
        highest = max(acked)
        filled = [o for span in sorted(gaps.overlap(0, highest), key=lambda s: s.begin)
                  for o in range(span.begin, span.end)]
        if filled:
            acked.extend(filled)
            gaps.chop(0, max(filled[-1], highest + 1))
    acked[:] = sorted(set(acked))  # a filled gap can repeat an acknowledged offset, which would end the run early
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        held = self.__dict__.setdefault("_yujing_held", {})
        since = held.get(tp)
        now = time.monotonic()
        if since is None or since[0] != committed or now - since[1] >= FETCH_AGAIN_AFTER_S:
            held[tp] = (committed, now)
            fate = fetch_again_from_committed(self, tp)
            self.log.warning("Commit of %r held at %r: that record is not acknowledged (acknowledged from %r); "
                             "it was %s; fetching again from there", tp, committed, acked[0], fate)
        return None
    run = next(consecutive_numbers(acked))
    acked[: len(run)] = []
    self._acked_index[tp].difference_update(run)
    return int(run[-1]) + 1


def fetch_stalled(consumer: Any, now: float | None = None) -> list[Any]:
    """Partitions whose commit stands still with records past it and none of them acknowledged for
    `STALLED_AFTER_S`: fetched again from the committed offset, unless an agent has one of them or it is paused
    (logged either way, with what the consumer knows of them). The hold above needs an acknowledgement after the
    hole; records lost at the tail of a quiet partition get none. Returns the partitions fetched again."""
    now = time.monotonic() if now is None else now
    seen = consumer.__dict__.setdefault("_yujing_stalled", {})
    assigned = set(consumer.assignment())
    for tp in [tp for tp in seen if tp not in assigned]:
        del seen[tp]
    handed = {}  # per partition, the least offset handed on to an agent and not yet acknowledged
    for message in list(consumer._unacked_messages):
        if not message.acked:
            handed[message.tp] = min(handed.get(message.tp, message.offset), message.offset)
    again = []
    for tp in assigned:
        committed = consumer._committed_offset.get(tp)
        end = consumer.highwater(tp)
        if (tp.topic.endswith("-changelog") or committed is None or end is None or end <= committed
                or consumer._acked.get(tp) or tp in consumer._paused_partitions):
            seen.pop(tp, None)
            continue
        since = seen.get(tp)
        if since is None or since[0] != committed:
            seen[tp] = (committed, now)
        elif now - since[1] >= STALLED_AFTER_S:
            seen[tp] = (committed, now)
            if handed.get(tp, -1) >= committed:  # an agent has a record of it (Redis away, or a step that hangs)
                consumer.log.warning("Commit of %r stalled at %r for %.0f s: an agent has had its record at %r "
                                     "since", tp, committed, now - since[1], handed[tp])
                continue
            fate = fetch_again_from_committed(consumer, tp)
            consumer.log.warning("Commit of %r stalled at %r for %.0f s with records up to %r, none acknowledged "
                                 "nor in an agent (next to hand on %r, dropped from %r; the record there %s): "
                                 "fetching again", tp, committed, now - since[1], end, _next(consumer).get(tp),
                                 _dropped(consumer).get(tp), fate)
            again.append(tp)
    return again


def commit_only_processed() -> None:
    """Install the commit that never passes an unacknowledged record (idempotent)."""
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]


def flush_before_commit() -> None:
    """Install the flush in faust's producer buffer (idempotent)."""
    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush  # type: ignore[method-assign]
