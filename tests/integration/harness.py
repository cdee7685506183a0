"""Helpers for integration tests on the real broker: isolated settings and free ports."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from deploy.config import Settings
from deploy.topics import create_topics
from streams.person_state import decode_state


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    """Wait until an HTTP server answers `url` (any 2xx); fail after the timeout."""
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


class Feed:
    """A client of the feed API, as a grid worker's app would be."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: bytes | dict | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.token is not None:
            h["Authorization"] = f"Bearer {self.token}"
        if method == "POST" and headers is None:
            h |= {"X-Request-Id": uuid.uuid4().hex, "X-Request-Time": str(int(time.time() * 1000))}
        req = urllib.request.Request(self.base + path, data=data if method == "POST" else None, headers=h,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode(errors="replace")}

    def tasks(self) -> list[dict]:
        status, body = self.call("GET", "/v1/tasks")
        assert status == 200, body
        return body["tasks"]


def feed_token(env: dict[str, str], *args: str) -> str:
    """A task-feed token issued by `yujing feed-token ARGS…` in `env`."""
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "feed-token", *args], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def state_differences(reference: set[tuple[bytes, bytes]], run: set[tuple[bytes, bytes]]) -> str:
    """For the persons whose state differs (`deploy.replay.person_table`), which fields differ and how."""
    ref, got = dict(reference), dict(run)
    lines = []
    for key in sorted(set(ref) | set(got)):
        if ref.get(key) == got.get(key):
            continue
        if key not in ref or key not in got:
            lines.append(f"{key!r}: only in the {'run' if key in got else 'reference'}")
            continue
        one, other = decode_state(ref[key]), decode_state(got[key])
        fields = [f"{f}: reference {getattr(one, f)!r} run {getattr(other, f)!r}"
                  for f in one.__struct_fields__ if getattr(one, f) != getattr(other, f)]
        lines.append(f"{key!r}: " + "; ".join(fields))
    return "\n".join(lines)
