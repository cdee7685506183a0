"""Producing to and reading from the pipeline's topics with kafka-python (demo, simulator feeds, explain, tests)."""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from schemas.records import is_progress
from streams.envelope import unpack
from streams.kafka_security import KafkaSecurity, client_options


class Cluster(Protocol):
    """Where the topics are: what these functions need of the settings (deploy.config.Settings has it)."""

    kafka_bootstrap: str
    kafka_security: KafkaSecurity
    topic_prefix: str
    app_id: str

    def topic(self, logical: str) -> str:
        """The real topic name of a logical one."""


def produce(settings: Cluster, logical: str, messages: list[tuple[bytes | None, bytes | None]],
            partition: int | None = None) -> None:
    """Send (key, value) messages to a logical topic (by key, or to `partition`) and wait until the broker has them
    all."""
    producer = KafkaProducer(**client_options(settings), acks="all")
    try:
        for key, value in messages:
            producer.send(settings.topic(logical), key=key, value=value, partition=partition)
        producer.flush(30)
    finally:
        producer.close()


def end_offsets(settings: Cluster, logical: str) -> dict[int, int]:
    """The current end offset of every partition of a logical topic."""
    return end_offsets_of(settings, [logical])[logical]


def end_offsets_of(settings: Cluster, logicals: Iterable[str]) -> dict[str, dict[int, int]]:
    """The current end offsets of several logical topics, through one client (a client costs ~85 ms of CPU)."""
    consumer = KafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    try:
        out: dict[str, dict[int, int]] = {}
        for logical in logicals:
            tps = [TopicPartition(settings.topic(logical), p)
                   for p in sorted(consumer.partitions_for_topic(settings.topic(logical)) or ())]
            out[logical] = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        return out
    finally:
        consumer.close()


def partition_counts(settings: Cluster, logicals: Iterable[str]) -> dict[str, int]:
    """How many partitions each logical topic has on the broker (topics not there yet: left out)."""
    consumer = KafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    try:
        counts = {logical: len(consumer.partitions_for_topic(settings.topic(logical)) or ()) for logical in logicals}
        return {logical: n for logical, n in counts.items() if n}
    finally:
        consumer.close()


def consume(settings: Cluster, logical: str, expect: int, timeout: float = 60.0, linger: float = 2.0,
            start: dict[int, int] | None = None) -> list[ConsumerRecord]:
    """Read a logical topic (from the beginning, or from `start` offsets) until `expect` messages or the timeout.

    It then lingers a little: more messages than expected is a result the caller must see. The envelopes of
    `yujing.events` and `yujing.contacts` are unpacked: their records count, their marks do not; nor do progress
    records (`Progress`, a provider's or the decider's).
    """
    consumer = KafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    got: list = []
    enveloped = logical in ("yujing.events", "yujing.contacts")

    def take(batch: list[ConsumerRecord]) -> None:
        got.extend(unpack(logical, batch) if enveloped else [m for m in batch if not is_progress(m.key)])

    try:
        topic = settings.topic(logical)
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        for tp in tps:
            if start and tp.partition in start:
                consumer.seek(tp, start[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        while time.monotonic() < deadline and len(got) < expect:
            for batch in consumer.poll(timeout_ms=300).values():
                take(batch)
        end = time.monotonic() + linger
        while time.monotonic() < end:
            for batch in consumer.poll(timeout_ms=300).values():
                take(batch)
    finally:
        consumer.close()
    return got


def read_to_end(settings: Cluster, topic: str, stall_s: float = 30.0) -> list[ConsumerRecord]:
    """Every message of a real (not logical) topic, from the beginning to the end offsets of this moment;
    `TimeoutError` when a read makes no progress for `stall_s` seconds, never a silent part.

    Only committed transactions are read (the hot path's changelogs are written in transactions; a killed
    worker's open one is aborted), so the end is the last stable offset."""
    return list(iter_to_end(settings, topic, stall_s))


def iter_to_end(settings: Cluster, topic: str, stall_s: float = 30.0,
                since_ms: int | None = None) -> Iterator[ConsumerRecord]:
    """Every committed message of a real topic (or those written since `since_ms`, by Kafka timestamps) up to its
    end offsets of this moment, one at a time (nothing kept); `TimeoutError` when the read makes no progress for
    `stall_s` seconds, never a silent part."""
    consumer = KafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None,
                             isolation_level="read_committed")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        if since_ms is None:
            consumer.seek_to_beginning(*tps)
        else:
            starts = consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp in tps:
                consumer.seek(tp, starts[tp].offset if starts.get(tp) is not None else ends[tp])
        last_progress = time.monotonic()
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() - last_progress > stall_s:
                behind = sum(max(0, ends[tp] - consumer.position(tp)) for tp in tps)
                raise TimeoutError(f"{topic}: read stalled {stall_s:.0f} s with {behind} record(s) unread; "
                                   "nothing was made from a part of it")
            for batch in consumer.poll(timeout_ms=300).values():
                last_progress = time.monotonic()
                yield from batch
    finally:
        consumer.close()


def read_table(settings: Cluster, table: str) -> dict[bytes, bytes]:
    """The latest value of every key of a Faust table, read from its changelog topic (deleted keys left out)."""
    latest: dict[bytes, bytes | None] = {}
    for msg in read_to_end(settings, f"{settings.app_id}-{table}-changelog"):
        latest[msg.key] = msg.value
    return {k: v for k, v in latest.items() if v is not None}


def pipeline_groups(settings: Cluster) -> tuple[str, str]:
    """The workers' consumer groups: the Faust app's, and the hot path's (deploy/app/stream_reader.py)."""
    return settings.app_id, f"{settings.app_id}-stream"


def group_lags(settings: Cluster, groups: str | Iterable[str]) -> dict[TopicPartition, int]:
    """Messages consumer groups have not committed, per partition of every topic of ours they have committed on."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**client_options(settings))
    consumer = KafkaConsumer(**client_options(settings), group_id=None)
    try:
        committed = {}
        for group in [groups] if isinstance(groups, str) else groups:
            committed.update(admin.list_group_offsets({group: None}).get(group, {}))
        ours = {tp: om.offset for tp, om in committed.items() if tp.topic.startswith(settings.topic_prefix)}
        ends = consumer.end_offsets(list(ours)) if ours else {}
        return {tp: max(0, ends[tp] - max(off, 0)) for tp, off in ours.items()}
    finally:
        consumer.close()
        admin.close()


def group_lag(settings: Cluster, groups: str | Iterable[str]) -> int | None:
    """Messages consumer groups have not committed, over every topic of ours they have committed on (None before
    they have committed anything)."""
    lags = group_lags(settings, groups)
    return sum(lags.values()) if lags else None
