"""Settings from the environment: what a child process is given reproduces them, and nonsense is refused."""
from __future__ import annotations

import pytest

from deploy.config import load_settings


def test_the_idle_time_goes_to_child_processes_and_must_be_positive() -> None:
    settings = load_settings({"YUJING_IDLE_AFTER_MS": "40", "YUJING_DATA_DIR": "/tmp/yujing-config-test"})
    assert settings.idle_after_ms == 40
    assert load_settings(settings.to_env()).idle_after_ms == 40
    assert load_settings({"YUJING_DATA_DIR": "/tmp/yujing-config-test"}).idle_after_ms == 500
    with pytest.raises(SystemExit, match="YUJING_IDLE_AFTER_MS"):
        load_settings({"YUJING_IDLE_AFTER_MS": "0"})
