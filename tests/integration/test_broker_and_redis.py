"""The real broker and Redis answer, and `create_topics` gives every contract topic its partitions and policy."""
from __future__ import annotations

import uuid

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from deploy.config import Settings
from deploy.redis_client import connect_sync
from deploy.topics import DEADLETTER_RETENTION_MS, KEPT_LATEST, RETENTION_DAYS, create_topics
from schemas.topics import CONTRACT_TOPICS, INTERNAL_TOPICS, PUBLIC_TOPICS
from streams.kafka_io import consume, produce
from tests.integration.scenario import wait_for


def test_produce_and_consume_on_the_real_broker(isolated: Settings) -> None:
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    produce(isolated, "outcomes", sent)
    got = consume(isolated, "outcomes", expect=50)
    assert sorted((m.key, m.value) for m in got) == sorted(sent)


def test_redis_round_trip(stack: Settings) -> None:
    client = connect_sync(stack.redis_url, **stack.redis_options())
    key = f"test:{uuid.uuid4().hex}"
    assert client.set(key, "x", nx=True, ex=30)
    assert not client.set(key, "y", nx=True, ex=30)  # the atomic cooldown primitive dispatch relies on
    assert client.get(key) == b"x"
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    client.delete(key)


def _topic_configs(settings: Settings, logicals: tuple[str, ...]) -> dict[str, dict[str, str]]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, settings.topic(t)) for t in logicals]
        return {name: {k: v["value"] for k, v in entries.items()}
                for name, entries in admin.describe_configs(resources)["topic"].items()}
    finally:
        admin.close()


def test_contract_topics_have_their_policies(isolated: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
    try:
        names = {isolated.topic(t) for t in CONTRACT_TOPICS}
        described = {d["name"]: d for d in admin.describe_topics(list(names))}
        assert set(described) == names
        assert all(len(d["partitions"]) == isolated.partitions for d in described.values())
    finally:
        admin.close()
    configs = _topic_configs(isolated, PUBLIC_TOPICS + INTERNAL_TOPICS)
    for logical in ("intel.indicators", "registry.subjects", "interception.domain"):  # the latest per key decides
        assert configs[isolated.topic(logical)]["cleanup.policy"] == "compact", logical
    for logical in ("interception.number", "interception.account"):  # … for a year at most
        got = configs[isolated.topic(logical)]
        assert (got["cleanup.policy"], got["retention.ms"]) == ("compact,delete", str(365 * 86_400_000)), logical
    for logical, days in RETENTION_DAYS.items():  # every other topic: an explicit, bounded retention
        got = configs[isolated.topic(logical)]
        assert (got["cleanup.policy"], got["retention.ms"]) == ("delete", str(days * 86_400_000)), logical
    assert set(RETENTION_DAYS) | set(KEPT_LATEST) == set(PUBLIC_TOPICS + INTERNAL_TOPICS)
    assert configs[isolated.topic("deadletter")]["retention.ms"] == str(DEADLETTER_RETENTION_MS)


def test_topics_made_by_an_older_release_get_this_ones_policies(isolated: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
    try:  # as an older release left it: a year of dead letters
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, isolated.topic("deadletter"),
                                            configs={"retention.ms": str(365 * 86_400_000)})], raise_on_unknown=False)
    finally:
        admin.close()
    def retention() -> str | None:  # a topic just made may be described without its configs for a moment
        return _topic_configs(isolated, ("deadletter",)).get(isolated.topic("deadletter"), {}).get("retention.ms")

    wait_for(lambda: retention() == str(365 * 86_400_000), 30, "the old release's retention")  # metadata settles
    assert dict(create_topics(isolated))[isolated.topic("deadletter")] == "updated"
    wait_for(lambda: retention() == str(DEADLETTER_RETENTION_MS), 30, "this release's retention")
