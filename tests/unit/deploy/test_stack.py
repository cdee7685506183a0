"""The local stack's shapes: which nodes each has, and a data folder of one shape is never started as another."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy import stack
from deploy.config import load_settings


def _settings(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({"YUJING_DATA_DIR": str(tmp_path), "YUJING_CACHE_DIR": str(tmp_path / "cache"),
                          "YUJING_KAFKA_PORT": "29192", "YUJING_REDIS_PORT": "26479", **env})


def test_one_node_of_each_by_default_and_three_kafka_and_six_redis_nodes_as_clusters(tmp_path: Path) -> None:
    one = _settings(tmp_path)
    assert [(n.name, n.port, n.folder.name) for n in stack.kafka_nodes(one)] == [("kafka", 29192, "kafka")]
    assert [n.name for n in stack.redis_nodes(one)] == ["redis"]
    both = _settings(tmp_path, YUJING_KAFKA_BROKERS="3", YUJING_REDIS_CLUSTER="1")
    assert [(n.name, n.node_id, n.port, n.second_port) for n in stack.kafka_nodes(both)] == [
        ("kafka-1", 1, 29192, 29193), ("kafka-2", 2, 29194, 29195), ("kafka-3", 3, 29196, 29197)]
    assert [(n.name, n.port, n.second_port) for n in stack.redis_nodes(both)][::5] == [
        ("redis-1", 26479, 26489), ("redis-6", 26484, 26494)]


def test_a_data_folder_made_with_another_broker_count_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "kafka" / "logs").mkdir(parents=True)
    (tmp_path / "kafka" / "logs" / "meta.properties").write_text("cluster.id=abc\n")
    with pytest.raises(stack.StackError, match="another --brokers count"):
        stack.start_kafka(_settings(tmp_path, YUJING_KAFKA_BROKERS="3"))
    (tmp_path / "kafka-1" / "logs").mkdir(parents=True)
    (tmp_path / "kafka-1" / "logs" / "meta.properties").write_text("cluster.id=abc\n")
    with pytest.raises(stack.StackError, match="1 of 3 Kafka nodes"):
        stack.start_kafka(_settings(tmp_path, YUJING_KAFKA_BROKERS="3"))


def test_three_nodes_are_configured_as_one_quorum_that_keeps_every_record_on_two(tmp_path: Path) -> None:
    settings = _settings(tmp_path, YUJING_KAFKA_BROKERS="3")
    nodes = stack.kafka_nodes(settings)
    props = dict(line.split("=", 1) for line in
                 stack._kafka_properties(settings, nodes[1], nodes).read_text().splitlines() if line)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29193,2@127.0.0.1:29195,3@127.0.0.1:29197"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29194,CONTROLLER://127.0.0.1:29195"
    assert (props["default.replication.factor"], props["min.insync.replicas"],
            props["transaction.state.log.min.isr"]) == ("3", "2", "2")
