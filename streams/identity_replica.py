"""Every worker's own full copy of the identity table, read from the table's changelog.

faust's GlobalTable is meant to be this, but with two workers one of them stopped applying the other's writes:
the scale-out run found 61 lines and accounts unresolved on one worker, its people split under their numbers
(faust issues robinhood/faust#716 and #541 describe the same). So the registry agent still writes the table
(its changelog is the record), and each worker follows every partition of that changelog itself: read to the
end before the worker starts, then followed by a consumer outside the group.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping

from streams.kafka_security import Secured, client_options

log = logging.getLogger(__name__)


class IdentityReplica(Mapping[bytes, bytes]):
    """Key → value of the identity table as its changelog says (deleted keys absent)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._positions: dict[int, int] = {}  # changelog partition → next offset to apply

    def __getitem__(self, key: bytes) -> bytes:
        return self._data[key]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def apply(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One changelog record: set, or delete on a tombstone."""
        if key is not None:
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value
        self._positions[partition] = offset + 1

    def set_local(self, key: bytes, value: bytes | None) -> None:
        """This worker's own write, seen at once (its changelog record follows and says the same)."""
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def load(self, cluster: Secured, topic: str, timeout: float = 120.0) -> None:
        """Read the changelog to its current end (before the worker starts: it starts with the whole registry)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**client_options(cluster), enable_auto_commit=False, group_id=None)
        try:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                return  # a first start: faust creates the changelog
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            ends = consumer.end_offsets(tps)
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self._positions.get(tp.partition, 0))
            deadline = time.monotonic() + timeout
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the identity changelog {topic} could not be read in {timeout:.0f}s")
                for batch in consumer.poll(timeout_ms=500).values():
                    for msg in batch:
                        self.apply(msg.partition, msg.offset, msg.key, msg.value)
        finally:
            consumer.close()
        log.info("identity replica: %d keys loaded from %s", len(self._data), topic)

    async def follow(self, cluster: Secured, topic: str) -> None:
        """Apply the changelog as it grows, for as long as the worker runs."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        loop = asyncio.get_running_loop()
        parts: set[int] = set()
        while not parts:  # faust creates the changelog topic as it starts
            # (aiokafka's consumer knows the partitions of assigned topics only: ask with kafka-python)
            parts = await loop.run_in_executor(None, partitions_of, cluster, topic)
            if not parts:
                await asyncio.sleep(0.5)
        consumer = AIOKafkaConsumer(**client_options(cluster), enable_auto_commit=False,
                                    group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self._positions.get(tp.partition, 0))
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for batch in batches.values():
                    for msg in batch:
                        self.apply(msg.partition, msg.offset, msg.key, msg.value)
        finally:
            await consumer.stop()


def partitions_of(cluster: Secured, topic: str) -> set[int]:
    """The partitions a topic has now (empty when it does not exist yet)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**client_options(cluster), enable_auto_commit=False, group_id=None)
    try:
        return set(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()
