"""Scale-out and replay speed: one worker, two workers, and two workers fed at a set speed, on one city.

    .venv/bin/python -m bench.scale_out [--partitions 4] [--speed 0]

Each run streams the city into topics of its own (the registry first), drains the pipeline, and collects the
warnings, SMS, call and visit tasks, stop-payments and account controls (deploy/replay.py). The tool prints
what differs from the one-worker run. `tests/integration/test_scale_out.py` asserts the same on a smaller city;
this is the larger look. Needs a running stack.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from bench.throughput import fresh
from deploy.config import load_settings
from deploy.replay import replay_city
from scorers.lab.city import CityConfig

CITY = CityConfig(residents=300, days=2, seed=5, attempts_per_10k_per_day=400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(load_settings().model_path))
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--speed", type=float, default=0.0,
                        help="also run two workers fed at this multiple of event time (0: skip)")
    args = parser.parse_args()
    base = dataclasses.replace(load_settings(), partitions=args.partitions, signal_partitions=args.partitions)
    work = Path(tempfile.mkdtemp(prefix="yujing-scale-"))
    runs = [("one worker", 1, 0.0), ("two workers", 2, 0.0)]
    if args.speed:
        runs.append((f"two at {args.speed:g}x", 2, args.speed))
    results = {}
    for name, n, speed in runs:
        s = fresh(base, work / f"w{len(results)}", f"{time.time_ns() % 10**8}w{n}")
        shutil.copytree(args.model, s.model_path)
        t0 = time.monotonic()
        results[name] = replay_city(s, CITY, n, work / f"logs-{len(results)}", speed)
        print(f"{name}: {time.monotonic() - t0:.0f} s (topics {s.topic_prefix}*)")
    one = results["one worker"]
    for name, out in results.items():
        if name == "one worker":
            continue
        print(f"\none worker against {name}")
        for kind in one:
            a, b = one[kind], out[kind]
            print(f"  {kind:<14} {len(a):>4} against {len(b):>4}  same {len(a & b):>4}  "
                  f"only one worker {len(a - b):>3}  only {name} {len(b - a):>3}")


if __name__ == "__main__":
    main()
