"""Backpressure: one worker's memory and lag while Redis is away, side by side with a run where it is not.

Both runs stream the same city at a rate the worker keeps up with into fresh topics on the running local stack
(`yujing stack up`). In the second, Redis is stopped `--outage` seconds after the feed starts and kept down for
`--outage` seconds. The worker's resident memory and its group's lag are sampled every half second.
Backpressure holds when the lag grows during the outage (records wait in Kafka) while memory does not grow
with it, and when every output of the quiet run is there after Redis returns.

    .venv/bin/python -m bench.backpressure --outage 20
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.throughput import one_worker, paced_city, worker_samples
from deploy.config import Settings, load_settings
from deploy.replay import collect_outputs, differences, wait_drained
from deploy.stack import restart
from scorers.lab.city import City, CityConfig
from scorers.lab.training import model_dir
from streams.kafka_io import group_lag, pipeline_groups


def resident_mb(pid: int) -> float:
    """The process's resident memory (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(base: Settings, model: Path, city: CityConfig, rate: float, outage_s: float,
        work: Path) -> dict[str, object]:
    """Stream the city through one worker at `rate` signals/s (Redis away for `outage_s` after as long, if
    > 0); what was seen."""
    tag = f"{uuid.uuid4().hex[:6]}bp{int(outage_s)}"
    s, worker = one_worker(base, model, work / tag, tag, work / f"{tag}.log")
    assert worker.proc is not None
    samples: list[tuple[float, float, int | None]] = []  # (seconds since the feed started, RSS MiB, lag)
    done = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not done.is_set():
            try:
                samples.append((time.monotonic() - t0, resident_mb(worker.proc.pid), group_lag(s, pipeline_groups(s))))
            except Exception:  # noqa: BLE001  (a sample missed while the worker or broker is busy)
                pass
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        feeder = threading.Thread(target=paced_city, args=(s, City(city), rate))
        feeder.start()
        outage: tuple[float, float] | None = None
        if outage_s > 0:
            time.sleep(outage_s)
            start = time.monotonic() - t0
            restart(base, "redis", down_s=outage_s)
            outage = (start, time.monotonic() - t0)
        feeder.join()
        wait_drained(s, [worker])
        retries = worker_samples(s).get(("yujing_redis_retries_total", ()), 0.0)
    finally:
        done.set()
        sampler.join()
        worker.stop()
    during = [(rss, lag or 0) for t, rss, lag in samples if outage and outage[0] <= t <= outage[1]]
    return {
        "outage_s": outage_s,
        "outage_window_s": outage,
        "rss_mb_peak": max(rss for _, rss, _ in samples),
        "rss_mb_peak_during_outage": max((rss for rss, _ in during), default=None),
        "lag_peak": max(lag or 0 for _, _, lag in samples),  # None: the group has not committed yet
        "lag_peak_during_outage": max((lag for _, lag in during), default=None),
        "samples": len(samples),
        "redis_retries": retries,
        "outputs": collect_outputs(s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=300)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--attempts", type=int, default=400, help="fraud attempts per 10k residents per day")
    parser.add_argument("--rate", type=float, default=150.0, help="signals per second fed")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds Redis is away (and when it goes)")
    parser.add_argument("--model", default=str(model_dir(load_settings().data_dir)), help="a trained model folder")
    args = parser.parse_args()
    base = load_settings()
    city = CityConfig(residents=args.residents, days=args.days, seed=args.seed, attempts_per_10k_per_day=args.attempts)
    work = Path(tempfile.mkdtemp(prefix="yujing-backpressure-"))
    quiet = run(base, Path(args.model), city, args.rate, 0, work)
    away = run(base, Path(args.model), city, args.rate, args.outage, work)
    quiet_out, away_out = quiet.pop("outputs"), away.pop("outputs")
    print(json.dumps({"quiet": quiet, "redis_away": away, "work": str(work),
                      "outputs": {k: len(v) for k, v in quiet_out.items()},  # type: ignore[union-attr]
                      "differences_with_redis_away": differences(quiet_out, away_out)},  # type: ignore[arg-type]
                     indent=2))
    print(f"\npeak RSS: quiet {quiet['rss_mb_peak']:.0f} MiB, Redis away {away['rss_mb_peak']:.0f} MiB "
          f"(× {away['rss_mb_peak'] / quiet['rss_mb_peak']:.2f}); peak lag: quiet {quiet['lag_peak']}, "  # type: ignore[operator]
          f"during the outage {away['lag_peak_during_outage']}")


if __name__ == "__main__":
    main()
