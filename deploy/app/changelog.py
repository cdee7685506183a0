"""The changelogs of the hot path's tables: created when missing, read back into a table when a partition arrives."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from deploy.app.partitioned import PartitionedTable
from deploy.config import Settings
from deploy.topics import replication
from streams.kafka_security import client_options


def changelog_topic(settings: Settings, table: str) -> str:
    """A table's changelog topic (named as Faust names them, so `read_table` reads either)."""
    return f"{settings.app_id}-{table}-changelog"


async def send_records(producer: AIOKafkaProducer, topic: str, partition: int,
                       records: Iterable[tuple[bytes, bytes | None]]) -> list[asyncio.Future]:
    """Send a partition's records in batches the producer's size allows (one delivery future per batch: a record
    by `send` costs several times as much, and a checkpoint sends thousands)."""
    futures: list[asyncio.Future] = []
    batch = producer.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: the first record always fits
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def ensure_changelogs(settings: Settings, tables: Iterable[str], partitions: int) -> None:
    """Create the compacted changelog topics that do not exist yet."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**client_options(settings), client_id="yujing-changelogs")
    try:
        factor, replicated = replication(len(admin.describe_cluster()["brokers"]))
        existing = set(admin.list_topics())
        new = [NewTopic(changelog_topic(settings, t), partitions, factor,
                        topic_configs={"cleanup.policy": "compact", **replicated})
               for t in tables if changelog_topic(settings, t) not in existing]
        if new:
            try:
                admin.create_topics(new, validate_only=False)
            except TopicAlreadyExistsError:  # another worker created it first
                pass
    finally:
        admin.close()


async def restore(settings: Settings, tables: list[tuple[PartitionedTable, list[int]]]) -> dict[str, int]:
    """Read these partitions of each table's changelog, from the start to its end now, into the table
    (committed checkpoints only); how many records were read per table.

    First it waits until no checkpoint is open on these partitions (the last stable offset is the end): the
    previous owner's last one is being committed, its markers on their way, or a killed worker's is open until
    its transaction times out and is aborted. Only then are the committed offsets to read from the ones that go
    with what is read here: offsets a commit has moved on while its changelog records were still open would
    skip records whose state is not in the table."""
    by_topic = {changelog_topic(settings, t.name): t for t, _ in tables}
    tps = [TopicPartition(changelog_topic(settings, t.name), p) for t, parts in tables for p in parts]
    read = {t.name: 0 for t, _ in tables}
    if not tps:
        return read
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest", isolation_level="read_committed",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await _stable_ends(settings, consumer, tps)
        left = {tp for tp in tps if ends[tp] > 0}
        if left:
            await consumer.seek_to_beginning(*left)
        deadline = time.monotonic() + 600
        while left:
            batches = await consumer.getmany(*left, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                table = by_topic[tp.topic]
                table.load(tp.partition, ((r.key, r.value) for r in records if r.key is not None))
                read[table.name] += len(records)
            await asyncio.sleep(0)  # records already fetched are returned without suspending: heartbeats wait
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
            if left and time.monotonic() > deadline:
                raise TimeoutError(f"changelogs not read to the end in 10 minutes: {sorted(left)}")
    finally:
        await consumer.stop()
    return read


async def wait_for_leaders(settings: Settings, tables: list[str], partitions: int, timeout_s: float = 60.0) -> None:
    """Until every changelog partition has a leader that answers (a topic just created may not yet)."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(changelog_topic(settings, t), p) for t in tables for p in range(partitions)]
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await consumer.end_offsets(tps)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def _stable_ends(settings: Settings, committed: AIOKafkaConsumer, tps: list[TopicPartition],
                       timeout_s: float = 60.0) -> dict[TopicPartition, int]:
    """The end offsets now, once every transaction open on these partitions has ended (the last stable offset
    has reached the end seen at the start). Partition by partition: a writer that keeps checkpointing holds
    no partition back for long, though all of them are seldom stable at one moment."""
    plain = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await plain.start()
    try:
        high = await plain.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        waiting = set(tps)
        while True:
            stable = await committed.end_offsets(sorted(waiting))
            waiting = {tp for tp in waiting if stable[tp] < high[tp]}
            if not waiting:
                return high
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tps[0].topic}: a checkpoint still open on partitions "
                                   f"{sorted(tp.partition for tp in waiting)} after {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await plain.stop()
