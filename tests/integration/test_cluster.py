"""On three Kafka nodes and a Redis Cluster: a broker and a Redis master lost mid-stream change nothing the city
gives, and the demo gives the single-node run's warnings. Marked `cluster` (scripts/test.sh, YUJING_WITH_CLUSTER=1)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient

from deploy.config import Settings
from deploy.redis_client import is_cluster
from deploy.replay import Outputs, Progress, replay_city
from deploy.stack import kafka_nodes, redis_nodes
from deploy.workers import WorkerProcess
from dispatch.review import REVIEW_FILE
from schemas.records import is_progress
from streams.kafka_io import read_to_end
from streams.kafka_security import client_options
from tests.integration.conftest import CITY, FIGURES
from tests.integration.harness import isolated_settings
from tests.integration.injector import Faults, node_says
from tests.integration.test_faults import DRAIN_S, FEED_SPEED, _judge, _with_adapter

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def cluster(stack: Settings) -> Settings:
    """The running stack, which must be the clusters (never skipped: the group is run only on them)."""
    if stack.kafka_brokers != 3 or not is_cluster(stack.redis_url):
        pytest.fail("the cluster group needs `yujing stack up --cluster` (scripts/test.sh with YUJING_WITH_CLUSTER=1)")
    return stack


def leader_node(settings: Settings, logical: str, partition: int) -> str:
    """The stack's name of the broker leading one partition of a logical topic."""
    admin = KafkaAdminClient(**client_options(settings))
    try:
        parts = admin.describe_topics([settings.topic(logical)])[0]["partitions"]
    finally:
        admin.close()
    leader = next(p["leader_id"] for p in parts if p["partition_index"] == partition)
    return next(n.name for n in kafka_nodes(settings) if n.node_id == leader)


def busiest_master(settings: Settings) -> str:
    """The Redis master holding most of this test's keys (its loss then cuts off the most of the test's work)."""
    counts = {}
    for node in redis_nodes(settings):
        if "master" not in node_says(node.port, settings, "CLUSTER NODES")[f"127.0.0.1:{node.port}"]["flags"]:
            continue
        client = redis.Redis(port=node.port, **settings.redis_options())
        try:
            counts[node.name] = sum(1 for _ in client.scan_iter(match=f"*{settings.redis_prefix}*", count=1000))
        finally:
            client.close()
    return max(counts, key=lambda name: counts[name])


def test_a_broker_and_a_redis_master_killed_mid_stream_lose_nothing_and_dispatch_nothing_twice(
        cluster: Settings, tmp_path: Path, small_model: Path, city_reference: Outputs) -> None:
    """While busy, the broker leading a partition of `yujing.events` is SIGKILLed and started again 3 s later;
    then the Redis master holding most of the run's keys is SIGKILLed, its replica takes over, and it comes back
    as a replica. The SMS adapter runs throughout. Every output, the person table and the triggers equal the
    uninterrupted run's on the same clusters; no SMS is sent twice."""
    settings = isolated_settings(cluster, tmp_path / "data", small_model, partitions=4)
    faults = Faults(settings, Progress(settings, tmp_path / "progress.log"))

    def replay(adapter_log: Path) -> Outputs:
        def crash_servers(workers: list[WorkerProcess]) -> None:
            faults.crash_broker(cluster, workers, node=leader_node(settings, "yujing.events", 0))
            faults.fail_over_redis(cluster, workers, busiest_master(settings))

        return replay_city(settings, CITY, 1, tmp_path / "logs", during=crash_servers, speed=FEED_SPEED,
                           drain_timeout=DRAIN_S, progress=faults.progress)

    t0 = time.monotonic()
    run, settled, sms = _with_adapter(settings, tmp_path, replay)
    assert [what.split()[0] for what, _ in faults.hit] == ["broker", "Redis"], faults.summary()
    assert all(now.busy for _, now in faults.hit), faults.summary()
    _judge(settings, "a broker, then a Redis master SIGKILLed (clusters)", city_reference, run, settled, sms, faults,
           time.monotonic() - t0, tmp_path / "logs")


def _demo(settings: Settings, logs: Path) -> tuple[str, list[str]]:
    """Run the README's main command on a small city with these settings: its warnings (one JSON line each) and
    its decisions (as read from `yujing.decisions`, in a stable order)."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "deploy.cli", "demo", "--residents", "400", "--days", "1",
                           "--seed", "5", "--attempts", "500"], env=env, capture_output=True, text=True, timeout=600)
    logs.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    decisions = sorted(m.value.decode() for m in read_to_end(settings, settings.topic("yujing.decisions"))
                       if not is_progress(m.key))
    return (settings.data_dir / "reports" / "demo-seed-5" / "warnings.jsonl").read_text(), decisions


def test_the_demo_on_the_clusters_gives_the_warnings_of_one_broker_and_one_redis(
        cluster: Settings, tmp_path: Path, small_model: Path) -> None:
    """The same city through the demo on the clusters and on the single-node stack (scripts/test.sh keeps it up
    beside them), with the shipped review policy: the same decisions and the same warnings, record for record.
    Decisions held for quick assessment are released in their person's order (before 2026-12 a shared clock
    released them, and one run sent a warning the other held back)."""
    single_kafka, single_redis = os.environ.get("YUJING_TEST_SINGLE_KAFKA"), os.environ.get("YUJING_TEST_SINGLE_REDIS")
    if not single_kafka or not single_redis:
        pytest.fail("YUJING_TEST_SINGLE_KAFKA and YUJING_TEST_SINGLE_REDIS name the single-node stack "
                    "(scripts/test.sh sets them)")
    single = dataclasses.replace(cluster, kafka_bootstrap=single_kafka, redis_url=single_redis, kafka_brokers=1,
                                 redis_cluster=False)
    runs = {}
    for name, base in (("clusters", cluster), ("single", single)):
        settings = dataclasses.replace(isolated_settings(base, tmp_path / name, small_model),
                                       review_policy=str(REVIEW_FILE))
        runs[name] = _demo(settings, tmp_path / f"{name}.log")
    (warned, decided), (warned_one, decided_one) = runs["clusters"], runs["single"]
    FIGURES.append(f"the demo (400 residents, 1 day, seed 5, the shipped review policy): {len(decided_one)} decisions "
                   f"and {warned_one.count(chr(10))} warnings on one broker and one Redis; {len(decided)} and "
                   f"{warned.count(chr(10))} on three brokers and a Redis Cluster; the same: "
                   f"{decided == decided_one and warned == warned_one}")
    assert warned_one, "no warning on one node: the comparison would prove nothing"
    assert decided == decided_one
    assert warned == warned_one
