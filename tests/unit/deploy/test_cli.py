"""The command line's behaviour: faust's worker options pass through, expected failures are one line and exit 2
(never a traceback), --version, and whole-topic reads that fail loudly when they stall."""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

import deploy.app
import streams.kafka_io
from deploy.cli import expected_failure, main
from deploy.config import load_settings
from streams.kafka_io import read_to_end


def test_faust_worker_options_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(deploy.app, "run_worker", lambda settings, faust_args: seen.append(faust_args))
    assert main(["worker", "--web-port", "6067", "--loglevel", "warning"]) == 0
    assert seen == [["--web-port", "6067", "--loglevel", "warning"]]


def test_unknown_options_of_other_commands_are_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["route-test", "tier=T1", "--web-port", "1"])
    assert exit_.value.code == 2 and "unrecognized arguments: --web-port 1" in capsys.readouterr().err


def test_a_tier_no_route_takes_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route-test", "tier=T9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("yujing route-test: no route for {'tier': 'T9'}"), err


def test_a_dismissal_without_a_reason_is_one_line_and_writes_nothing(capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams.kafka_io, "produce", lambda *a: pytest.fail("an assessment was written"))
    assert main(["review", "dismiss", "d-1", "--reason", "  "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yujing review dismiss:") and err.count("\n") == 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("yujing ")


def test_kafka_and_redis_unreachable_are_told_in_a_line() -> None:
    kafka = expected_failure(KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1"), load_settings)
    assert kafka is not None and kafka.startswith("Kafka 在 127.0.0.1:") and "yujing stack up" in kafka
    assert expected_failure(ValueError("a bug"), load_settings) is None  # a bug keeps its traceback
    # and for real, through the console script: a Redis that is not there
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "deploy.cli", "campaign", "--dry-run"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("yujing campaign: Redis 在 redis://127.0.0.1:1/0 无响应"), res.stderr


class StalledConsumer:
    """A consumer whose fetches never come: the partition stays behind its end."""

    def __init__(self, **_: Any) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def end_offsets(self, tps: list) -> dict:  # type: ignore[type-arg]
        return {tp: 5 for tp in tps}

    def assign(self, tps: list) -> None:  # type: ignore[type-arg]
        pass

    def seek_to_beginning(self, *tps: Any) -> None:
        pass

    def position(self, tp: Any) -> int:
        return 0

    def poll(self, timeout_ms: int) -> dict:  # type: ignore[type-arg]
        return {}

    def close(self) -> None:
        pass


def test_a_whole_topic_read_that_stalls_fails_instead_of_returning_a_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams.kafka_io, "KafkaConsumer", StalledConsumer)
    with pytest.raises(TimeoutError, match="read stalled 0 s with 5 record"):
        read_to_end(load_settings(), "warnings", stall_s=0.3)


def test_simulate_draws_a_progress_bar(tmp_path: Any) -> None:
    env = {"PATH": "/usr/bin:/bin", "YUJING_DATA_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "deploy.cli", "simulate", "--residents", "150", "--days", "1",
                          "--out", str(tmp_path / "city")], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    total = int(res.stdout.split(" records in ")[0].replace(",", ""))
    last = res.stderr.replace("\r", "\n").strip().splitlines()[-1]  # tqdm's bar, on stderr, at its end
    assert last.startswith(f"simulating: {total / 1000:.2f}k records"), (last, total)
