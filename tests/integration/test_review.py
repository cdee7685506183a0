"""Quick assessment on the real broker and Redis, with the shipped policy: a held T3 is dispatched only after an
analyst confirms (through `yujing review`), also when the worker was SIGKILLed while it waited; a dismissal sends
nothing and lands a labelled false alarm on `outcomes`; a T2 nobody assessed is dispatched once when the clock
passes its deadline, and a confirm after that sends nothing twice."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from dispatch.review import REVIEW_FILE
from schemas.catalogue import tr
from schemas.internal import Decision, DecisionReason
from streams.kafka_io import consume, produce
from tests.integration.scenario import HOUR, MIN, T, load_registry, wait_for

LONG_CALL = [DecisionReason(code="LONG_CALL", detail="与陌生号码 **********1111 通话 45 分钟")]  # no case element


def held_decision(decision_id: str, tier: str, ts: int, rose: bool = True) -> tuple[bytes, bytes]:
    d = Decision(decision_id=decision_id, person="S_ALICE", subject_id="S_ALICE", tier=tier, rose=rose,  # type: ignore[arg-type]
                 fraud_type="fake_investment", type_probability=0.6, score=0.2, reasons=LONG_CALL, evidence=["c1"],
                 ts=ts, episode_ts=ts, model_version="m1", policy_version="p1")
    return b"S_ALICE", msgspec.json.encode(d)


def yujing(settings: Settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env={**os.environ, **settings.to_env()},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def warned(settings: Settings, expect: int, linger: float = 3) -> list[str]:
    return [json.loads(m.value)["warning_id"] for m in consume(settings, "warnings", expect, timeout=60, linger=linger)]


def test_held_decisions_wait_for_an_analyst_or_the_clock_and_go_out_once(isolated: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(isolated, review_policy=str(REVIEW_FILE))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        load_registry(settings)
        produce(settings, "yujing.decisions", [held_decision("d-confirm", "T3", T),
                                               held_decision("d-dismiss", "T3", T + HOUR)])
        def both_listed() -> str | None:
            out = yujing(settings, "review", "list")
            return out if "d-confirm" in out and "d-dismiss" in out else None

        listed = wait_for(both_listed, 60, "both held decisions listed")
        assert "d-confirm" in listed and listed.index("d-confirm") < listed.index("d-dismiss")  # by deadline
        assert consume(settings, "warnings", expect=0, timeout=3, linger=2) == []  # nothing before an analyst

        worker.stop(sig=signal.SIGKILL)  # killed while both wait: Redis keeps the queue
        worker = WorkerProcess(settings, tmp_path / "worker-2.log").start()
        yujing(settings, "review", "confirm", "d-confirm", "--analyst", "analyst-1")
        yujing(settings, "review", "dismiss", "d-dismiss", "--analyst", "analyst-1", "--reason", "家属确认为正常投资")
        assert warned(settings, expect=1) == ["d-confirm"], worker.log_tail()
        sms = [json.loads(m.value) for m in consume(settings, "dispatch.sms", expect=1, timeout=30, linger=2)]
        assert [s["warning_id"] for s in sms] == ["d-confirm"]
        labels = [json.loads(m.value) for m in consume(settings, "outcomes", expect=1, timeout=30, linger=2)]
        assert [(o["warning_id"], o["outcome"], o["note"]) for o in labels] == [
            ("d-dismiss", "false_alarm", "analyst-1: 家属确认为正常投资")]

        produce(settings, "yujing.decisions", [held_decision("d-timeout", "T2", T + 2 * HOUR),
                                               held_decision("tick", "T2", T + 2 * HOUR + 31 * MIN, rose=False)])
        assert sorted(warned(settings, expect=2)) == ["d-confirm", "d-timeout"], worker.log_tail()
        yujing(settings, "review", "confirm", "d-timeout", "--analyst", "analyst-2")  # too late: taken by the clock
        assert sorted(warned(settings, expect=2, linger=6)) == ["d-confirm", "d-timeout"]
        tasks = [json.loads(m.value)["warning_id"] for topic in ("dispatch.phone", "dispatch.visit")
                 for m in consume(settings, topic, expect=2, timeout=10, linger=2)]
        assert sorted(tasks) == ["d-timeout", "d-timeout"]  # one call and one visit: once
        assert tr("no decision is waiting for review") in yujing(settings, "review", "list")
    finally:
        worker.stop()
