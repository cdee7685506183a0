"""A checkpoint's offsets carry the member's generation: the broker takes the current one's and refuses a stale
one, whose transaction (changelog records with it) is then aborted."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata

from deploy.app.fencing import Member, fence
from deploy.config import Settings
from streams.kafka_io import produce


async def _checkpoint(settings: Settings, member: Member, consumer: AIOKafkaConsumer, group: str,
                      log_topic: str, tp: TopicPartition) -> None:
    """One checkpoint: a changelog record and an offset in a transaction, fenced with `member`. A refused one
    raises once its transaction is seen aborted, or fails the test if it stays open (the producer still up)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, transactional_id=uuid.uuid4().hex)
    await producer.start()
    try:
        fence(producer, lambda: member)
        try:
            async with producer.transaction():
                await producer.send_and_wait(log_topic, b"state", key=b"k")
                await producer.send_offsets_to_transaction({tp: OffsetAndMetadata(3, "")}, group)
        except CommitFailedError:
            assert not await _open_transactions(settings, log_topic), "the refused checkpoint's transaction is open"
            raise
    finally:
        await producer.stop()


async def _open_transactions(settings: Settings, topic: str) -> bool:
    """Whether a transaction stays open on the topic for 5 s (its last stable offset behind its end)."""
    committed = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed")
    plain = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await committed.start()
    await plain.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]  # a contract topic's count
        for _ in range(50):
            if await committed.end_offsets(parts) == await plain.end_offsets(parts):
                return False
            await asyncio.sleep(0.1)
        return True
    finally:
        await committed.stop()
        await plain.stop()


async def _committed(consumer: AIOKafkaConsumer, tp: TopicPartition, expect: int) -> int | None:
    """The committed offset, once it is `expect` or after 10 s (a transaction's offsets show once its markers are
    written)."""
    for _ in range(100):
        if (offset := await consumer.committed(tp)) == expect:
            break
        await asyncio.sleep(0.1)
    return offset


async def _run(settings: Settings) -> tuple[int | None, BaseException | None, int | None, int]:
    topic, log_topic, group = settings.topic("outcomes"), settings.topic("deadletter"), f"fence-{uuid.uuid4().hex}"
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                group_instance_id=f"{group}-a", enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=10_000)
    await consumer.start()
    try:
        consumer.subscribe([topic])
        await consumer.getmany(timeout_ms=5000)
        coordinator = consumer._coordinator
        current: Member = (coordinator.generation, coordinator.member_id, f"{group}-a")
        stale: Member = (coordinator.generation - 1, coordinator.member_id, f"{group}-a")
        await _checkpoint(settings, current, consumer, group, log_topic, tp)
        taken = await _committed(consumer, tp, 3)
        refused: BaseException | None = None
        try:
            await _checkpoint(settings, stale, consumer, group, log_topic, TopicPartition(topic, 1))
        except CommitFailedError as exc:
            refused = exc
        other = await consumer.committed(TopicPartition(topic, 1))
    finally:
        await consumer.stop()
    reader = AIOKafkaConsumer(log_topic, bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    try:
        batches = await reader.getmany(timeout_ms=3000)
        visible = sum(len(r) for r in batches.values())
    finally:
        await reader.stop()
    return taken, refused, other, visible


def test_a_stale_generation_cannot_commit_a_checkpoint(isolated: Settings) -> None:
    produce(isolated, "outcomes", [(f"k{i}".encode(), b"{}") for i in range(20)])
    taken, refused, other, visible = asyncio.run(_run(isolated))
    assert taken == 3  # the current member's checkpoint is in
    assert refused is not None, "a stale generation's offsets were taken"
    assert other is None  # and none of its offsets
    assert visible == 1  # only the current member's changelog record: the stale one's transaction was aborted


def test_fencing_needs_a_member(isolated: Settings) -> None:
    with pytest.raises(CommitFailedError):
        asyncio.run(_checkpoint(isolated, (-1, "", None), None, "g", isolated.topic("deadletter"),  # type: ignore
                                TopicPartition(isolated.topic("outcomes"), 0)))
