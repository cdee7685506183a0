"""Starting and stopping `yujing worker` processes (for the demo, the tests and scale-out)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from deploy.config import Settings


class WorkerProcess:
    """One `yujing worker` child process with its own log file."""

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None,
                 command: Sequence[str] = (sys.executable, "-m", "deploy.cli"), cwd: Path | None = None) -> None:
        self.settings = settings
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.command = tuple(command)  # an installed `yujing` script when testing the wheel
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 90.0) -> "WorkerProcess":
        """Start the worker and wait until faust reports it ready; raise with the log's tail if it is not."""
        env = {**os.environ, **self.settings.to_env(), **self.extra_env, "PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*self.command, "worker"], env=env, cwd=self.cwd,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if b"Worker ready" in log.read():
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {ready_timeout}s:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = 15, timeout: float = 30.0) -> None:
        """Stop the worker with a signal (SIGTERM by default), killing it if it lingers."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the worker's log, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def worker_settings(settings: Settings, index: int) -> Settings:
    """The settings of worker `index` of a group: its own table folder and web port, the group's model."""
    if index == 0:
        return dataclasses.replace(settings, model_dir=settings.model_path, worker_name="w0")
    return dataclasses.replace(settings, data_dir=settings.data_dir / "workers" / f"w{index}",
                               web_port=settings.web_port + index, model_dir=settings.model_path,
                               worker_name=f"w{index}")


def start_workers(settings: Settings, count: int, logs: Path, ready_timeout: float = 600.0) -> list[WorkerProcess]:
    """Start `count` workers in one consumer group (one after the other: the first may train the model)."""
    workers: list[WorkerProcess] = []
    try:
        for i in range(count):
            workers.append(WorkerProcess(worker_settings(settings, i), logs / f"worker-{i}.log").start(ready_timeout))
    except BaseException:
        for w in workers:
            w.stop()
        raise
    return workers
