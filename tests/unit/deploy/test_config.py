"""Settings from the environment: what a child process is given reproduces them, and nonsense is refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy import config
from deploy.config import load_settings


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
