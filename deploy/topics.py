"""Creates the contract's topics (and yujing's internal ones) with their partitions and cleanup policies."""
from __future__ import annotations

from dataclasses import dataclass

from deploy.config import Settings
from schemas.topics import (
    COMPACTED_TOPICS,
    CONTRACT_TOPICS,
    DEADLETTER_TOPIC,
    INTERNAL_TOPICS,
    SIGNAL_TOPICS,
)
from streams.kafka_security import client_options

DEADLETTER_RETENTION_MS = 365 * 24 * 3600 * 1000  # a year: dead letters are evidence to be replayed or audited


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: its real name, partitions and topic-level configs."""

    logical: str
    name: str
    partitions: int
    configs: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic yujing reads or writes, as the contract and settings define them."""
    specs = []
    for logical in CONTRACT_TOPICS + INTERNAL_TOPICS:
        configs: dict[str, str] = {}
        partitions = settings.partitions
        if logical in SIGNAL_TOPICS:
            partitions = settings.signal_partitions
        if logical in COMPACTED_TOPICS:
            configs["cleanup.policy"] = "compact"
        if logical == DEADLETTER_TOPIC:
            configs["retention.ms"] = str(DEADLETTER_RETENTION_MS)
        specs.append(TopicSpec(logical, settings.topic(logical), partitions, configs))
    return specs


def create_topics(settings: Settings) -> list[tuple[str, str]]:
    """Create missing topics; returns (name, 'created' | 'exists') for each."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**client_options(settings), client_id="yujing-topics")
    try:
        brokers = len(admin.describe_cluster()["brokers"])
        replication = min(3, brokers)
        existing = set(admin.list_topics())
        specs = topic_specs(settings)
        new = [NewTopic(s.name, s.partitions, replication, topic_configs=s.configs)
               for s in specs if s.name not in existing]
        if new:
            admin.create_topics(new, validate_only=False)
        return [(s.name, "exists" if s.name in existing else "created") for s in specs]
    finally:
        admin.close()
