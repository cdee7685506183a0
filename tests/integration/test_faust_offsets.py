"""The worker's seek to committed offsets on a real broker: a partition never committed is read from its start."""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.app.faust_offsets import _next, _seek_to_committed
from deploy.config import Settings
from streams.kafka_io import end_offsets, produce


class _Thread:
    """What faust's consumer thread offers `_seek_to_committed`, over a real aiokafka consumer."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def seek_to_committed(self) -> Any:
        return await self.consumer.seek_to_committed()

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        await self.consumer.seek_to_beginning(*tps)

    async def position(self, tp: TopicPartition) -> int:
        return await self.consumer.position(tp)


def test_records_fetched_then_dropped_on_a_partition_never_committed_are_read_again(isolated: Settings) -> None:
    """Two decisions fetched while a rebalance stops the flow are dropped, the partition has no commit yet: after
    the seek to the committed offsets the next fetch starts at the first of them, not after the second (aiokafka
    does not seek a partition without a committed offset, so its fetcher stays past what was dropped)."""
    topic = isolated.topic("yujing.decisions")
    produce(isolated, "yujing.decisions", [(b"P1", b"d0"), (b"P1", b"d1"), (b"P1", b"d2")])
    partition = next(p for p, end in end_offsets(isolated, "yujing.decisions").items() if end)

    async def run() -> tuple[list[int], list[int]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=isolated.kafka_bootstrap, group_id=f"{isolated.app_id}-seek",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        try:
            dropped = (await consumer.getmany(tp, timeout_ms=10_000, max_records=2)).get(tp, [])
            faust_consumer = SimpleNamespace(_thread=_Thread(consumer), log=logging.getLogger("test"),
                                             app=SimpleNamespace(conf=SimpleNamespace(
                                                 consumer_auto_offset_reset="earliest")))
            await _seek_to_committed(faust_consumer)
            assert _next(faust_consumer)[tp] == 0  # a record from a fetch before the seek is not taken as next
            again = (await consumer.getmany(tp, timeout_ms=10_000)).get(tp, [])
            return [r.offset for r in dropped], [r.offset for r in again]
        finally:
            await consumer.stop()

    dropped, again = asyncio.run(run())
    assert dropped == [0, 1]
    assert again == [0, 1, 2]
