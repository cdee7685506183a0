"""Settings from the environment: what a child process is given reproduces them, and nonsense is refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy import config
from deploy.config import kafka_node_ports, load_settings, redis_node_ports
from deploy.topics import replication


def test_the_idle_time_goes_to_child_processes_and_must_be_positive() -> None:
    settings = load_settings({"YUJING_IDLE_AFTER_MS": "40", "YUJING_DATA_DIR": "/tmp/yujing-config-test"})
    assert settings.idle_after_ms == 40
    assert load_settings(settings.to_env()).idle_after_ms == 40
    assert load_settings({"YUJING_DATA_DIR": "/tmp/yujing-config-test"}).idle_after_ms == 500
    with pytest.raises(SystemExit, match="YUJING_IDLE_AFTER_MS"):
        load_settings({"YUJING_IDLE_AFTER_MS": "0"})


def test_the_producers_whose_progress_counts_go_to_child_processes_and_nonsense_is_refused() -> None:
    settings = load_settings({"YUJING_PROGRESS_PRODUCERS": " signals.telecom = gw-1, gw-2 ; intel.indicators=cases;"})
    assert settings.producers == {"signals.telecom": ("gw-1", "gw-2"), "intel.indicators": ("cases",)}
    assert load_settings(settings.to_env()).producers == settings.producers
    assert load_settings({}).producers == {}
    for wrong in ("signals.telephone=gw-1", "signals.telecom=", "gw-1"):
        with pytest.raises(SystemExit, match="YUJING_PROGRESS_PRODUCERS"):
            load_settings({"YUJING_PROGRESS_PRODUCERS": wrong})


def test_the_data_folder_is_the_checkouts_var_data_or_the_users_data_folder_when_installed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_settings({}).data_dir == (config.PROJECT_ROOT / "var" / "data").resolve()
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "site-packages")  # an installed wheel: no pyproject.toml
    assert load_settings({"XDG_DATA_HOME": str(tmp_path / "share")}).data_dir == tmp_path / "share" / "yujing"
    assert load_settings({"YUJING_DATA_DIR": str(tmp_path / "d")}).data_dir == tmp_path / "d"


def test_credentials_come_from_files_never_show_in_a_repr_and_nonsense_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kafka").write_text("s3cret-kafka\n")
    (tmp_path / "redis").write_text("s3cret-redis\n")
    settings = load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                              "KAFKA_SASL_USERNAME": "yujing", "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "kafka"),
                              "KAFKA_SASL_PASSWORD": "ignored", "REDIS_USERNAME": "yujing",
                              "REDIS_PASSWORD_FILE": str(tmp_path / "redis"), "REDIS_URL": "rediss://r:6380/0",
                              "REDIS_SSL_CAFILE": "/ca.pem", "YUJING_DATA_DIR": str(tmp_path)})
    assert settings.kafka_security.password == "s3cret-kafka" and settings.redis_password == "s3cret-redis"
    assert "s3cret" not in repr(settings)
    assert settings.redis_options() == {"username": "yujing", "password": "s3cret-redis", "ssl_ca_certs": "/ca.pem",
                                        "ssl_check_hostname": True}
    child = load_settings(settings.to_env())  # what a child process is given (it names the broker it was given)
    assert (child.kafka_security, child.redis_password, child.redis_options()) == (
        settings.kafka_security, settings.redis_password, settings.redis_options())
    options = settings.kafka_security.client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_plain_password"] == "s3cret-kafka"
    with pytest.raises(SystemExit, match="KAFKA_SASL_MECHANISM"):
        load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"})
    with pytest.raises(SystemExit, match="must be one of"):
        load_settings({"KAFKA_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(SystemExit, match="REDIS_USERNAME"):
        load_settings({"REDIS_URL": "redis://app:secret@redis:6379/0"})
    with pytest.raises(SystemExit, match="cannot read"):
        load_settings({"REDIS_PASSWORD_FILE": str(tmp_path / "missing")})


def test_each_shape_of_the_local_stack_has_its_own_folder_ports_and_addresses(tmp_path: Path) -> None:
    one = load_settings({"YUJING_CACHE_DIR": str(tmp_path)})
    assert (one.kafka_bootstrap, one.redis_url) == ("127.0.0.1:19092", "redis://127.0.0.1:16379/0")
    both = load_settings({"YUJING_KAFKA_BROKERS": "3", "YUJING_REDIS_CLUSTER": "1"})
    assert both.kafka_bootstrap == "127.0.0.1:19192,127.0.0.1:19194,127.0.0.1:19196"
    assert both.redis_url == "redis+cluster://127.0.0.1:16479"
    assert both.data_dir == one.data_dir.with_name(one.data_dir.name + "-k3-rc")
    child = load_settings(both.to_env())  # a child process gets the same shape (as servers it did not start)
    assert (child.kafka_bootstrap, child.redis_url, child.kafka_brokers, child.redis_cluster, child.data_dir) == (
        both.kafka_bootstrap, both.redis_url, 3, True, both.data_dir)
    given = load_settings({"YUJING_KAFKA_BROKERS": "3", "YUJING_KAFKA_PORT": "29192",
                           "YUJING_KAFKA_CONTROLLER_PORT": "29193", "YUJING_DATA_DIR": str(tmp_path)})
    assert given.kafka_bootstrap == "127.0.0.1:29192,127.0.0.1:29194,127.0.0.1:29196"
    assert given.data_dir == tmp_path
    with pytest.raises(SystemExit, match="1 or 3"):
        load_settings({"YUJING_KAFKA_BROKERS": "2"})


def test_cluster_nodes_take_consecutive_ports_below_the_projects_limit() -> None:
    assert kafka_node_ports(29192, 29193, 3) == [(29192, 29193), (29194, 29195), (29196, 29197)]
    assert kafka_node_ports(19092, 19093, 1) == [(19092, 19093)]
    nodes = redis_node_ports(26479, cluster=True)
    assert [p for p, _ in nodes] == list(range(26479, 26485))
    assert [b for _, b in nodes] == list(range(26489, 26495))  # Redis's own default, port + 10000, is above 32768
    ports = {p for pair in nodes + kafka_node_ports(29192, 29193, 3) for p in pair}
    assert len(ports) == 18 and max(ports) < 32768
    assert redis_node_ports(26379, cluster=False) == [(26379, 0)]


def test_three_brokers_replicate_every_topic_three_times_and_acknowledge_on_two() -> None:
    assert replication(1) == (1, {})
    assert replication(3) == (3, {"min.insync.replicas": "2"})
    assert replication(5) == (3, {"min.insync.replicas": "2"})
