"""The real broker and Redis answer, and `create_topics` gives every contract topic its partitions and policy."""
from __future__ import annotations

import uuid

import redis
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from deploy.config import Settings
from deploy.topics import DEADLETTER_RETENTION_MS
from schemas.topics import CONTRACT_TOPICS
from streams.kafka_io import consume, produce


def test_produce_and_consume_on_the_real_broker(isolated: Settings) -> None:
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    produce(isolated, "outcomes", sent)
    got = consume(isolated, "outcomes", expect=50)
    assert sorted((m.key, m.value) for m in got) == sorted(sent)


def test_redis_round_trip(stack: Settings) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    key = f"test:{uuid.uuid4().hex}"
    assert client.set(key, "x", nx=True, ex=30)
    assert not client.set(key, "y", nx=True, ex=30)  # the atomic cooldown primitive dispatch relies on
    assert client.get(key) == b"x"
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    client.delete(key)


def test_contract_topics_have_their_policies(isolated: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
    try:
        names = {isolated.topic(t) for t in CONTRACT_TOPICS}
        described = {d["name"]: d for d in admin.describe_topics(list(names))}
        assert set(described) == names
        assert all(len(d["partitions"]) == isolated.partitions for d in described.values())
        resources = [ConfigResource(ConfigResourceType.TOPIC, isolated.topic(t))
                     for t in ("intel.indicators", "registry.subjects", "deadletter", "warnings")]
        configs = {name: {k: v["value"] for k, v in entries.items()}
                   for name, entries in admin.describe_configs(resources)["topic"].items()}
    finally:
        admin.close()
    assert configs[isolated.topic("intel.indicators")]["cleanup.policy"] == "compact"
    assert configs[isolated.topic("registry.subjects")]["cleanup.policy"] == "compact"
    assert "cleanup.policy" not in configs[isolated.topic("warnings")]  # the broker default: delete
    assert configs[isolated.topic("deadletter")]["retention.ms"] == str(DEADLETTER_RETENTION_MS)
