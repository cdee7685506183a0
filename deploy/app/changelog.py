"""The changelogs of the hot path's tables: created when missing, read back into a table when a partition arrives."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.app.partitioned import PartitionedTable
from deploy.config import Settings


def changelog_topic(settings: Settings, table: str) -> str:
    """A table's changelog topic (named as Faust names them, so `read_table` reads either)."""
    return f"{settings.app_id}-{table}-changelog"


def ensure_changelogs(settings: Settings, tables: Iterable[str], partitions: int) -> None:
    """Create the compacted changelog topics that do not exist yet."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="yujing-changelogs")
    try:
        brokers = len(admin.describe_cluster()["brokers"])
        existing = set(admin.list_topics())
        new = [NewTopic(changelog_topic(settings, t), partitions, min(3, brokers),
                        topic_configs={"cleanup.policy": "compact"})
               for t in tables if changelog_topic(settings, t) not in existing]
        if new:
            try:
                admin.create_topics(new, validate_only=False)
            except TopicAlreadyExistsError:  # another worker created it first
                pass
    finally:
        admin.close()


async def restore(settings: Settings, table: PartitionedTable, partitions: list[int]) -> int:
    """Read these partitions of a table's changelog, from the start to its end now, into the table (only the keys
    committed checkpoints only); how many records were read.

    First it waits until no checkpoint is open on these partitions (the last stable offset is the end): the
    previous owner's last one is being committed, its markers on their way, or a killed worker's is open until
    its transaction times out and is aborted. Only then are the committed offsets to read from the ones that go
    with what is read here: offsets a commit has moved on while its changelog records were still open would
    skip records whose state is not in the table."""
    if not partitions:
        return 0
    topic = changelog_topic(settings, table.name)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    read = 0
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends = await _stable_ends(settings, consumer, tps)
        left = {tp for tp in tps if ends[tp] > 0}
        await consumer.seek_to_beginning(*tps)
        started = time.monotonic()
        while left:
            batches = await consumer.getmany(*left, timeout_ms=500)
            for tp, records in batches.items():
                table.load(tp.partition, ((r.key, r.value) for r in records if r.key is not None))
                read += len(records)
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
            if left and time.monotonic() - started > 600:
                raise TimeoutError(f"{topic}: partitions {sorted(tp.partition for tp in left)} not read to the "
                                   f"end in 10 minutes")
    finally:
        await consumer.stop()
    return read


async def _stable_ends(settings: Settings, committed: AIOKafkaConsumer, tps: list[TopicPartition],
                       timeout_s: float = 60.0) -> dict[TopicPartition, int]:
    """The end offsets once no transaction is open on these partitions (last stable offset = high watermark)."""
    plain = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None)
    await plain.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            stable, high = await committed.end_offsets(tps), await plain.end_offsets(tps)
            if stable == high:
                return stable
            if time.monotonic() > deadline:
                open_ = sorted(tp.partition for tp in tps if stable[tp] != high[tp])
                raise TimeoutError(f"{tps[0].topic}: a checkpoint still open on partitions {open_} after "
                                   f"{timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await plain.stop()
