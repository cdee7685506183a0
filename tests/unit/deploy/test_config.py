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
