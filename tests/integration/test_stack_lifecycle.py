"""`yujing stack up|status|down` on a data folder of its own: real servers, disk-backed, nothing left behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from deploy.config import load_settings
from schemas.topics import INTERNAL_TOPICS, PUBLIC_TOPICS
from streams.kafka_io import consume, produce
from tests.integration.harness import free_port


def _yujing(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, capture_output=True, text=True,
                          timeout=240)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_up_status_topics_down_and_up_again_keeps_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
    kport = free_port()
    env.update(YUJING_DATA_DIR=str(tmp_path / "data"), YUJING_KAFKA_PORT=str(kport),
               YUJING_KAFKA_CONTROLLER_PORT=str(free_port()), YUJING_REDIS_PORT=str(free_port()))
    settings = load_settings(env)
    try:
        up = _yujing(env, "stack", "up")
        assert up.returncode == 0, up.stderr
        status = _yujing(env, "stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        assert any(line.startswith("kafka") and f"127.0.0.1:{kport}" in line and "answering" in line
                   and "NOT" not in line for line in lines), status.stdout
        assert any(line.startswith("redis") and "pid" in line and "NOT" not in line for line in lines)
        pids = [int((tmp_path / "data" / "run" / f"{n}.pid").read_text()) for n in ("kafka", "redis")]

        topics = _yujing(env, "topics")
        assert topics.returncode == 0, topics.stderr
        assert topics.stdout.count("created") == len(PUBLIC_TOPICS + INTERNAL_TOPICS)

        produce(settings, "registry.subjects", [(b"s1", b'{"kept": true}')])
        redis.Redis.from_url(settings.redis_url, **settings.redis_options()).set("cooldown:s1", "1")

        down = _yujing(env, "stack", "down")
        assert down.returncode == 0 and "kafka" in down.stdout and "redis" in down.stdout
        assert not any(_alive(pid) for pid in pids)
        assert _yujing(env, "stack", "status").returncode == 1

        assert _yujing(env, "stack", "up").returncode == 0
        assert [m.value for m in consume(settings, "registry.subjects", expect=1)] == [b'{"kept": true}']
        assert redis.Redis.from_url(settings.redis_url, **settings.redis_options()).get("cooldown:s1") == b"1"  # AOF replayed
    finally:
        _yujing(env, "stack", "down")


def test_external_servers_are_used_not_started(tmp_path: Path) -> None:
    env = {**os.environ, "YUJING_DATA_DIR": str(tmp_path / "data"), "KAFKA_BOOTSTRAP": "127.0.0.1:1",
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    status = _yujing(env, "stack", "status")
    assert status.returncode == 1
    assert "external" in status.stdout and "NOT answering" in status.stdout
    assert not (tmp_path / "data" / "run").exists()
