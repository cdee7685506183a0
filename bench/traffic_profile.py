"""Traffic of the simulated city: signals per resident and day, and the busiest second, minute, quarter and hour
against the average.

    .venv/bin/python -m bench.traffic_profile --residents 2000 --days 3 --seed 7

Generates the city offline (`scorers.lab.city.City`, no broker) and counts its signals by event time. Also gives
each input topic's mean record as the feed sends it (contract key and JSON value, `deploy.city_stream`), before
Kafka's own overhead. A small city's busiest second or minute is mostly chance (a few records more than the
average); the busiest quarter and hour follow the simulator's day (`traffic.DIURNAL`), which is what a large
population's peak tends to. The simulator models no holidays, campaigns or outages followed by a catch-up.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

import msgspec

from deploy.city_stream import contract_key
from schemas.topics import SIGNAL_TOPICS
from schemas.units import DAY_MS, HOUR_MS, MINUTE_MS
from scorers.lab.city import City, CityConfig
from scorers.lab.city.family import family
from scorers.lab.city.traffic import DIURNAL

WINDOWS = {"second": 1000, "minute": MINUTE_MS, "quarter hour": 15 * MINUTE_MS, "hour": HOUR_MS}


def profile(cfg: CityConfig) -> dict:
    """Counts of one city's signals by topic and by event-time window, and mean key and value bytes by topic."""
    city = City(cfg)
    per_topic: Counter[str] = Counter()
    key_bytes: Counter[str] = Counter()
    value_bytes: Counter[str] = Counter()
    windows: dict[str, Counter[int]] = {w: Counter() for w in WINDOWS}
    for topic, rec in city.records():
        per_topic[topic] += 1
        key_bytes[topic] += len(contract_key(rec))
        value_bytes[topic] += len(msgspec.json.encode(rec))
        if topic in SIGNAL_TOPICS:
            offset = rec.ts - cfg.start_ts  # type: ignore[attr-defined]
            for name, width in WINDOWS.items():
                windows[name][offset // width] += 1
    signals = sum(per_topic[t] for t in SIGNAL_TOPICS)
    seconds = cfg.days * DAY_MS / 1000
    average = signals / seconds
    peaks = {}
    for name, width in WINDOWS.items():
        top = max(windows[name].values())
        peaks[name] = {"signals": top, "per_s": top / (width / 1000), "x_average": top / (width / 1000) / average}
    return {
        "residents": cfg.residents, "days": cfg.days, "seed": cfg.seed, "family": cfg.family.name,
        "attempts_per_10k_per_day": cfg.attack.attempts_per_10k_per_day,
        "signals": signals, "records_by_topic": dict(per_topic),
        "signals_per_resident_day": signals / cfg.residents / cfg.days,
        "per_resident_day_by_topic": {t: per_topic[t] / cfg.residents / cfg.days for t in SIGNAL_TOPICS},
        "average_per_s": average, "peaks": peaks,
        "diurnal_peak_x_average": float(DIURNAL.max() / DIURNAL.mean()),
        "mean_key_value_bytes": {t: {"key": key_bytes[t] / per_topic[t], "value": value_bytes[t] / per_topic[t]}
                                 for t in per_topic},
        "mean_signal_key_value_bytes": sum(key_bytes[t] + value_bytes[t] for t in SIGNAL_TOPICS) / max(signals, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--family", default="textbook", help="a named family (scorers/lab/city/family.py)")
    parser.add_argument("--attempts", type=float, help="fraud attempts per 10k residents per day (default: the family's)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    r = profile(CityConfig(residents=args.residents, days=args.days, seed=args.seed, family=family(args.family),
                           attempts_per_10k_per_day=args.attempts))
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"city: {r['residents']:,} residents x {r['days']} days, seed {r['seed']}, family {r['family']}, "
          f"{r['attempts_per_10k_per_day']:g} fraud attempts per 10k per day")
    print(f"signals: {r['signals']:,}  ({r['signals_per_resident_day']:.1f} per resident and day: "
          + ", ".join(f"{t.split('.')[1]} {v:.1f}" for t, v in r["per_resident_day_by_topic"].items()) + ")")
    print(f"average: {r['average_per_s']:.2f} signals/s  ({r['average_per_s'] / r['residents']:.3g} per resident)")
    for name, p in r["peaks"].items():
        print(f"busiest {name:<13s} {p['signals']:>8,} signals  {p['per_s']:>9.2f}/s  {p['x_average']:.2f}x average")
    print(f"simulator's busiest hour of the day (DIURNAL): {r['diurnal_peak_x_average']:.2f}x average")
    for topic, b in r["mean_key_value_bytes"].items():
        print(f"mean record {topic:<18s} key {b['key']:5.1f} B  value {b['value']:6.1f} B")
    print(f"mean signal record (key + value): {r['mean_signal_key_value_bytes']:.1f} B")


if __name__ == "__main__":
    main()
