"""The commit: its flush waits for every table write; it never passes a record not acknowledged."""
from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from intervaltree import Interval, IntervalTree

from deploy.app.faust_commit import (
    STALLED_AFTER_S,
    _faust_new_offset,
    _flush,
    _new_offset,
    _send_pending,
    fetch_stalled,
)


class FakeBuffer:
    """faust's producer buffer as the flush sees it: a queue, and a sender that takes a while per message."""

    def __init__(self, queued: int) -> None:
        self.queue = list(range(queued))
        self.produced: list[int] = []

    @property
    def size(self) -> int:
        return len(self.queue)

    async def flush_atmost(self, max_messages: int | None) -> int:  # faust's gives up after 0.1 s per message
        await asyncio.sleep(0)
        return 0

    async def pump(self) -> None:
        """faust's `_handle_pending`: take one off the queue, then hand it to the producer."""
        while self.queue:
            message = self.queue.pop(0)
            await _send_pending(self, message)


async def _fake_faust_send(self: FakeBuffer, message: int) -> None:
    await asyncio.sleep(0.01)  # a slow send: the message is neither queued nor produced meanwhile
    self.produced.append(message)


def test_the_flush_returns_only_when_every_message_reached_the_producer(monkeypatch) -> None:
    monkeypatch.setattr("deploy.app.faust_commit._faust_send_pending", _fake_faust_send)

    async def run() -> list[int]:
        buffer = FakeBuffer(queued=3)
        pump = asyncio.ensure_future(buffer.pump())
        await asyncio.sleep(0.015)  # the second message has left the queue and is on its way
        await _flush(buffer)
        produced = list(buffer.produced)
        await pump
        return produced

    assert asyncio.run(run()) == [0, 1, 2]


class FakeConsumer:
    """faust's consumer as `_new_offset` sees it: acknowledged offsets, gaps and committed offsets per partition."""

    def __init__(self, committed: int | None, acked: list[int], gaps: list[tuple[int, int]] = ()) -> None:
        self._acked = {TP: list(acked)}
        self._acked_index = {TP: set(acked)}
        self._gap = {TP: IntervalTree(Interval(a, b) for a, b in gaps)}
        self._committed_offset = {TP: committed}
        self.log = logging.getLogger("fake-consumer")


TP = TopicPartition("signals.domain", 2)


def test_faust_commits_past_one_unacknowledged_record_at_the_head() -> None:
    # the record at 40 (the committed offset: the next to read) never reached the end of an agent
    assert _faust_new_offset(FakeConsumer(40, [41, 42, 43]), TP) == 44


def test_the_commit_waits_for_the_record_at_the_committed_offset(caplog) -> None:
    consumer = FakeConsumer(40, [41, 42, 43])
    with caplog.at_level(logging.WARNING):
        assert _new_offset(consumer, TP) is None
        assert _new_offset(consumer, TP) is None
    assert [r.getMessage() for r in caplog.records] == [  # once, and the partition is to be fetched again
        "Commit of TopicPartition(topic='signals.domain', partition=2) held at 40: that record is not acknowledged "
        "(acknowledged from 41); "
        "it was never handed on; fetching again from there"]
    assert consumer.__dict__["_yujing_fetch_again"] == {TP}
    consumer._acked[TP].append(40)
    assert _new_offset(consumer, TP) == 44 and consumer._acked[TP] == []


def test_the_commit_stops_before_a_hole_and_counts_gaps_the_broker_skips_as_done() -> None:
    assert _new_offset(FakeConsumer(40, [40, 41, 43]), TP) == 42
    assert _new_offset(FakeConsumer(40, [40, 41, 45], gaps=[(42, 45)]), TP) == 46
    assert _new_offset(FakeConsumer(40, [43, 44], gaps=[(40, 43)]), TP) == 45
    assert _new_offset(FakeConsumer(None, [7, 8]), TP) == 9  # never committed: from the first acknowledged


class Handed:
    """A message faust handed on (to an agent's stream)."""

    def __init__(self, offset: int, acked: bool = False) -> None:
        self.tp, self.offset, self.acked, self.refcount = TP, offset, acked, 1


class QuietConsumer(FakeConsumer):
    """A consumer whose partition has records past its committed offset (`end`) and none acknowledged."""

    def __init__(self, committed: int, end: int, handed: Handed | None = None, paused: bool = False) -> None:
        super().__init__(committed, [])
        self.end = end
        self._unacked_messages = [handed] if handed is not None else []
        self._paused_partitions = {TP} if paused else set()

    def assignment(self) -> set:
        return {TP}

    def highwater(self, tp: object) -> int:
        return self.end


def test_records_left_at_the_tail_of_a_quiet_partition_are_fetched_again_once_it_stalls(caplog) -> None:
    consumer = QuietConsumer(committed=5, end=7)
    with caplog.at_level(logging.WARNING):
        assert fetch_stalled(consumer, now=100.0) == []
        assert fetch_stalled(consumer, now=100.0 + STALLED_AFTER_S - 1) == []
        assert fetch_stalled(consumer, now=100.0 + STALLED_AFTER_S) == [TP]
    assert consumer.__dict__["_yujing_fetch_again"] == {TP}
    assert "stalled at 5" in caplog.records[0].getMessage() and "never handed on" in caplog.records[0].getMessage()
    assert fetch_stalled(consumer, now=100.0 + STALLED_AFTER_S + 1) == []  # not again at once


def test_a_partition_that_moves_or_has_an_agent_at_work_is_not_fetched_again(caplog) -> None:
    moving = QuietConsumer(committed=5, end=9)
    fetch_stalled(moving, now=0.0)
    moving._committed_offset[TP] = 6
    assert fetch_stalled(moving, now=STALLED_AFTER_S) == []
    caught_up = QuietConsumer(committed=9, end=9)
    assert fetch_stalled(caught_up, now=0.0) == [] and fetch_stalled(caught_up, now=STALLED_AFTER_S) == []
    busy = QuietConsumer(committed=5, end=9, handed=Handed(7))  # 5 and 6 done, not yet acknowledged (in order)
    fetch_stalled(busy, now=0.0)
    with caplog.at_level(logging.WARNING):
        assert fetch_stalled(busy, now=STALLED_AFTER_S) == []
    assert "an agent has had its record at 7" in caplog.records[0].getMessage()
    assert "_yujing_fetch_again" not in busy.__dict__
    paused = QuietConsumer(committed=5, end=9, paused=True)  # faust recovers a table, or holds the flow
    assert fetch_stalled(paused, now=0.0) == [] and fetch_stalled(paused, now=STALLED_AFTER_S) == []
