"""A simulated city through running workers, and what came out: shared by the scale-out test and bench."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import msgspec
from kafka.errors import KafkaError

from deploy.city_stream import stream_city
from deploy.config import Settings
from deploy.workers import WorkerProcess, start_workers
from scorers.lab.city import City, CityConfig
from streams.kafka_io import group_lag, group_lags, read_table, read_to_end
from streams.watermarks import Frontier

Outputs = dict[str, set]


def why_not_drained(settings: Settings) -> str:
    """What holds a pipeline that does not drain: lag per partition, decisions waiting, and busy channels."""
    lags = {f"{tp.topic}/{tp.partition}": n for tp, n in group_lags(settings, settings.app_id).items() if n}
    pending = sorted(read_table(settings, "pending"))
    busy = {}
    for key, raw in read_table(settings, "marks").items():
        frontier = msgspec.msgpack.decode(raw, type=Frontier)
        busy[key.decode()] = {c: ts for c, (ts, idle) in frontier.seen.items() if not idle}
    return (f"uncommitted {lags}; {len(pending)} decisions waiting (first {pending[:3]}); "
            f"busy channels per partition {busy}")


def wait_drained(settings: Settings, workers: list[WorkerProcess], timeout: float = 600.0) -> None:
    """Until the group has committed everything three polls running and no decision waits for the watermark."""
    deadline, calm = time.monotonic() + timeout, 0
    while calm < 3:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pipeline did not drain in {timeout:.0f} s: {why_not_drained(settings)}")
        if not all(w.running for w in workers):
            raise RuntimeError(next(w for w in workers if not w.running).log_tail())
        try:
            calm = calm + 1 if group_lag(settings, settings.app_id) == 0 and not read_table(settings, "pending") else 0
        except KafkaError:  # the broker restarting (a fault test): not calm yet
            calm = 0
        time.sleep(1)


def collect_outputs(settings: Settings) -> Outputs:
    """The ids of every decision, warning, SMS, call and visit task, stop-payment and account control sent."""
    def docs(topic: str) -> list[dict]:
        return [msgspec.json.decode(m.value) for m in read_to_end(settings, settings.topic(topic))]

    return {
        "decisions": {(d["decision_id"], d["tier"], d["rose"]) for d in docs("yujing.decisions")},
        "warnings": {(w["warning_id"], w["subject_id"], w["tier"], w["fraud_type"]) for w in docs("warnings")},
        "sms": {t["message_id"] for t in docs("dispatch.sms")},
        "tasks": {t["task_id"] for t in docs("dispatch.phone") + docs("dispatch.visit")},
        "stop_payments": {p["transfer_id"] for p in docs("interception.payment")},
        "controls": {c["account"] for c in docs("interception.account")},
    }


def replay_city(settings: Settings, city: CityConfig, workers: int, logs: Path, speed: float = 0.0,
                during: Callable[[list[WorkerProcess]], None] | None = None, drain_timeout: float = 600.0) -> Outputs:
    """Start the workers, stream the city (the registry first), wait until drained; what came out.

    `during(workers)`, when given, runs while the city streams (fault injection: it may kill and restart them).
    A pipeline not drained `drain_timeout` seconds after that raises, saying what holds it.
    """
    procs = start_workers(settings, workers, logs)
    try:
        failed: list[BaseException] = []

        def feed() -> None:
            try:
                stream_city(settings, City(city), speed=speed, registry_first=True)
            except BaseException as exc:  # reported by the caller's thread below
                failed.append(exc)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        if during is not None:
            during(procs)
        feeder.join()
        if failed:
            raise failed[0]
        wait_drained(settings, [p for p in procs if p.running], drain_timeout)
    finally:
        for p in procs:
            p.stop()
    return collect_outputs(settings)


def differences(one: Outputs, other: Outputs) -> dict[str, tuple[int, int]]:
    """Per kind of output: (only in the first, only in the second), for the kinds that differ."""
    return {k: (len(one[k] - other[k]), len(other[k] - one[k])) for k in one if one[k] != other[k]}
