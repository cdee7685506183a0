"""Scale-out comparison: one worker against two in one consumer group on the same simulated city.

    .venv/bin/python -m bench.scale_out [--runs 1]

Each run streams the city into topics of its own (the registry first, loaded before any signal), drains the
pipeline, and collects the warnings, SMS, call and visit tasks, stop-payments and account controls. The tool
prints what differs between the one-worker run and the two-worker run. It is a measurement, not a test:
the two runs do not give the same warnings yet (see docs/scaling.md). Needs a running stack.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import msgspec

from bench.throughput import fresh
from deploy.kafka_io import group_lag
from deploy.config import Settings, load_settings
from deploy.feed import stream_city
from deploy.kafka_io import read_to_end
from deploy.workers import start_workers
from scorers.city import City, CityConfig

CITY = CityConfig(residents=300, days=2, seed=5, attempts_per_10k_per_day=400)


def run(settings: Settings, workers: int, logs: Path) -> dict[str, set]:
    """Start the workers, stream the city, wait until every stage is drained; what came out."""
    procs = start_workers(settings, workers, logs)
    try:
        stream_city(settings, City(CITY), registry_first=True)
        deadline, zeros = time.monotonic() + 600, 0
        while zeros < 3:
            if time.monotonic() > deadline:
                raise RuntimeError("the pipeline did not drain")
            if not all(p.running for p in procs):
                raise RuntimeError(procs[0].log_tail())
            zeros = zeros + 1 if group_lag(settings, settings.app_id) == 0 else 0
            time.sleep(1)
    finally:
        for p in procs:
            p.stop()

    def docs(topic: str) -> list[dict]:
        return [msgspec.json.decode(m.value) for m in read_to_end(settings, settings.topic(topic))]

    return {
        "warnings": {(w["warning_id"], w["subject_id"], w["tier"], w["fraud_type"]) for w in docs("warnings")},
        "sms": {t["message_id"] for t in docs("dispatch.sms")},
        "tasks": {t["task_id"] for t in docs("dispatch.phone") + docs("dispatch.visit")},
        "stop_payments": {p["transfer_id"] for p in docs("interception.payment")},
        "controls": {c["account"] for c in docs("interception.account")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(load_settings().model_path))
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    base = dataclasses.replace(load_settings(), partitions=args.partitions, signal_partitions=args.partitions)
    work = Path(tempfile.mkdtemp(prefix="yujing-scale-"))
    results = {}
    for n in (1, 2):
        s = fresh(base, work / f"w{n}", f"{time.time_ns() % 10**8}w{n}")
        shutil.copytree(args.model, s.model_path)
        results[n] = run(s, n, work / f"logs-{n}")
    for kind in results[1]:
        one, two = results[1][kind], results[2][kind]
        print(f"{kind:<14} one worker {len(one):>4}  two workers {len(two):>4}  same {len(one & two):>4}  "
              f"only one {len(one - two):>3}  only two {len(two - one):>3}")


if __name__ == "__main__":
    main()
