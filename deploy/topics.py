"""Creates the contract's topics, yujing's extensions and internal ones, with their partitions and policies."""
from __future__ import annotations

from dataclasses import dataclass

from deploy.config import Settings
from schemas.topics import (
    INTERNAL_TOPICS,
    PUBLIC_TOPICS,
    SIGNAL_TOPICS,
)
from streams.kafka_security import client_options

DAY_MS = 24 * 3600 * 1000
# How long each topic keeps its records: no longer than its use needs, since most carry personal data
# (docs/security.md, Retention). Compacted topics keep the latest record per key instead, and forget a key a day
# after its tombstone.
RETENTION_DAYS = {
    # raw signals: the state is rebuilt from changelogs, not from them; a week covers replaying an outage
    "signals.telecom": 7, "signals.payment": 7, "signals.domain": 7,
    # what was decided and sent: explain, the bulletin, audits, and rebuilding queues after Redis lost them
    "warnings": 30, "dispatch.sms": 30, "dispatch.phone": 30, "dispatch.visit": 30, "interception.payment": 30,
    "yujing.decisions": 30, "yujing.shadow-decisions": 30,  # a candidate is judged against the live ones
    "outcomes": 180, "interception.replies": 180,  # labels, the half-year figures, banks' answers for audits
    "yujing.assessments": 180,  # who confirmed or dismissed what, and why: an audit trail, and labels
    "deadletter": 14,  # long enough to fix the cause and reprocess; the raw value is what reprocessing needs
    "yujing.events": 7, "yujing.contacts": 7, "yujing.triggers": 7,  # the hot path's own hops
}
# the latest per key decides (a block, a control, a person, an indicator): kept until a tombstone says otherwise
KEPT_LATEST = ("intel.indicators", "registry.subjects", "interception.domain", "interception.number",
               "interception.account", "yujing.sms-sent")
# …and for the blocks of numbers and controls of accounts (personal data), no longer than a year either
KEPT_LATEST_DAYS = {"interception.number": 365, "interception.account": 365,
                    "yujing.sms-sent": 30}  # as long as dispatch.sms keeps the messages it may read again
DEADLETTER_RETENTION_MS = RETENTION_DAYS["deadletter"] * DAY_MS


def replication(brokers: int) -> tuple[int, dict[str, str]]:
    """The replication factor for a cluster of `brokers`, and the topic configs that go with it: on three or
    more, a write acknowledged by all in-sync replicas (acks=all) is on at least two brokers."""
    factor = min(3, brokers)
    return factor, ({"min.insync.replicas": "2"} if factor >= 3 else {})


def broker_count(settings: Settings) -> int:
    """How many brokers the cluster's metadata lists."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**client_options(settings), client_id="yujing-topics")
    try:
        return len(admin.describe_cluster()["brokers"])
    finally:
        admin.close()


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
    for logical in PUBLIC_TOPICS + INTERNAL_TOPICS:
        configs: dict[str, str] = {}
        partitions = settings.partitions
        if logical in SIGNAL_TOPICS:
            partitions = settings.signal_partitions
        if logical in KEPT_LATEST_DAYS:
            configs |= {"cleanup.policy": "compact,delete", "delete.retention.ms": str(DAY_MS),
                        "retention.ms": str(KEPT_LATEST_DAYS[logical] * DAY_MS)}
        elif logical in KEPT_LATEST:
            configs |= {"cleanup.policy": "compact", "delete.retention.ms": str(DAY_MS)}
        else:
            configs |= {"cleanup.policy": "delete", "retention.ms": str(RETENTION_DAYS[logical] * DAY_MS)}
        specs.append(TopicSpec(logical, settings.topic(logical), partitions, configs))
    return specs


def create_topics(settings: Settings) -> list[tuple[str, str]]:
    """Create missing topics and give existing ones their policies; returns (name, 'created' | 'updated') each."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    admin = KafkaAdminClient(**client_options(settings), client_id="yujing-topics")
    try:
        factor, replicated = replication(len(admin.describe_cluster()["brokers"]))
        existing = set(admin.list_topics())
        specs = [TopicSpec(s.logical, s.name, s.partitions, s.configs | replicated) for s in topic_specs(settings)]
        new = [NewTopic(s.name, s.partitions, factor, topic_configs=s.configs)
               for s in specs if s.name not in existing]
        if new:
            admin.create_topics(new, validate_only=False)
        kept = [s for s in specs if s.name in existing]
        if kept:  # a topic made by an older release gets this one's policies (incrementally: nothing else reset)
            # raise_on_unknown off: the client's own check describes the topic, and a just-made one may not show yet;
            # the broker checks the names itself, and its answer is checked below
            done = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.configs)
                                        for s in kept], raise_on_unknown=False)
            failed = {name: str(result) for name, result in done.get("topic", {}).items() if str(result) != "OK"}
            if failed:
                raise RuntimeError(f"setting the topics' policies failed: {failed}")
        return [(s.name, "updated" if s.name in existing else "created") for s in specs]
    finally:
        admin.close()
