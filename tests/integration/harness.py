"""Helpers for integration tests on the real broker: isolated settings and free ports."""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from deploy.config import Settings
from deploy.topics import create_topics


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    """Wait until an HTTP server answers `url` (any 2xx); fail after the timeout."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def isolated_settings(base: Settings, data_dir: Path, model: Path, partitions: int = 2) -> Settings:
    """Settings with topic names, consumer group and data folder of their own (with a copy of `model`),
    and the topics created."""
    tag = uuid.uuid4().hex[:10]
    settings = dataclasses.replace(
        base, topic_prefix=f"t{tag}.", app_id=f"yujing-t{tag}", data_dir=data_dir,
        signal_partitions=partitions, partitions=partitions, web_port=free_port(), feed_port=free_port(),
        kafka_external=True, redis_external=True,
    )
    create_topics(settings)
    shutil.copytree(model, data_dir / "model")
    return settings


@contextmanager
def cli_process(settings: Settings, logs: Path, name: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`yujing ARGS…` running on the test's settings (its log in `logs/NAME.log`), stopped on the way out."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", *args], env=env,
                            stdout=open(logs / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
