"""The arithmetic of docs/sizing.md's table for a city, a province and the country, from its measured inputs.

    .venv/bin/python -m bench.sizing_table

Measures nothing: every input below is a figure measured elsewhere (the comment says where) or an assumption
(marked so). Change an input and run it again to redo the table.
"""
from __future__ import annotations

import math

# measured (docs/sizing.md, "City, province, country", inputs 1-9)
SIGNALS_PER_RESIDENT_DAY = 24.8  # bench.traffic_profile --residents 20000 --days 3 --family realistic
PEAK_X_AVERAGE = 1.86  # same run: busiest minute / average
WORKER_FLAT_OUT = 9_792  # signals/s, one worker flat out, the low end of issue 15's last runs (docs/scaling.md)
STATE_PER_RESIDENT = 24_000  # B a worker keeps per resident (bench.table_memory, docs/sizing.md)
IDENTITY_PER_RESIDENT = 4.15 * 177  # B: identity keys per resident x bytes per key in IdentityReplica
IDENTITY_KEYS_PER_RESIDENT = 4.15
LOAD_RATE = 86_000  # identity records/s read by kafka-python (the low one of two reads of a changelog)
SIGNAL_DISK = 170.6  # B per signal on the signal topics' disk (bench.topic_bytes)
HOPS_DISK = 345.8  # B per signal on yujing.events + contacts + triggers (bench.topic_bytes, 8 partitions, 1 worker)
CHANGELOG_WRITTEN = 731  # B per signal written to the changelogs (docs/scaling.md, eleventh step, the high end)
CHANGELOG_STATE = 6_147  # B per resident in the compacted changelogs (bench.topic_bytes, live keys)
FULL_GC_S_PER_GIB = 0.804 / (320 / 1024)  # the 10-minute full collection: 804 ms at 320 MiB RSS (docs/scaling.md)
ENVELOPE_S = 80e-6  # an envelope sent and read costs at most about 80 us (docs/scaling.md, twelfth step)
HOT_VALUE_SHARE = 0.0568  # of all contacts, to the busiest value (site0.com.cn; a 20,000-resident realistic city)
REDIS_8D = 1_440  # B per warning in keys kept 8 days: esc:ctx, esc:pending, cooldown, review (bench.redis_footprint)
REDIS_30D = 1_560  # B per warning in keys kept up to 30 days: task feed streams and tasks, SMS ledger (same run)
REDIS_ESC_SLOT = 1_343  # B per warning in the {yujing:esc} slot (8 days)
REDIS_FEED_SLOT = 1_400  # B per warning in the {yujing:feed} slot (while its tasks wait; up to 30 days)

# settings and assumptions
HEADROOM = 0.5  # a worker runs at most at half its flat-out rate at the peak (assumption)
WORKER_HEAP_GIB = 2.0  # state per worker: its full collection about 5 s, half the group's 10 s session (assumption)
RETENTION_DAYS = 7  # signal and hop topics (deploy/topics.py)
REPLICATION = 3  # production setting (docs/delivery.md)
DIRTY = 2.0  # a compacted changelog holds up to about twice its live keys (Kafka's min.cleanable.dirty.ratio 0.5)
BROKER_DISK = 8e12  # B per broker (assumption), filled to at most 60 %
BROKER_DISK_USE = 0.6
BROKER_IN = 1.25e9 * 0.4  # B/s into a broker: 10 Gbit/s network at 40 % (assumption)
WARNINGS_PER_10K_DAY = 8  # 5 ordinary residents (yujing train's budget, a setting) + 3 attempts (realistic family)

PLACES = {"city": 2_000_000, "province": 100_000_000, "country": 1_400_000_000}


def pow2(n: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def row(residents: int) -> dict[str, float]:
    per_day = residents * SIGNALS_PER_RESIDENT_DAY
    average = per_day / 86_400
    peak = average * PEAK_X_AVERAGE
    cpu_workers = math.ceil(peak / (WORKER_FLAT_OUT * HEADROOM))
    state = residents * STATE_PER_RESIDENT
    memory_workers = math.ceil(state / (WORKER_HEAP_GIB * 2**30))
    workers = max(cpu_workers, memory_workers)
    partitions = pow2(2 * workers)
    identity = residents * IDENTITY_PER_RESIDENT
    disk = REPLICATION * ((SIGNAL_DISK + HOPS_DISK) * per_day * RETENTION_DAYS + DIRTY * CHANGELOG_STATE * residents)
    ingress = peak * (SIGNAL_DISK + HOPS_DISK + CHANGELOG_WRITTEN)  # B/s written, before replication
    brokers_disk = math.ceil(disk / (BROKER_DISK * BROKER_DISK_USE))
    brokers_net = math.ceil(REPLICATION * ingress / BROKER_IN)
    return {"residents": residents, "per_day": per_day, "average": average, "peak": peak,
            "cpu_workers": cpu_workers, "memory_workers": memory_workers, "workers": workers,
            "partitions": partitions, "state": state, "state_per_worker": state / workers,
            "identity": identity, "identity_load_s": residents * IDENTITY_KEYS_PER_RESIDENT / LOAD_RATE,
            "full_gc_s": state / workers / 2**30 * FULL_GC_S_PER_GIB,
            "marks_batch_s": 2 * partitions * ENVELOPE_S, "hot_value_per_s": peak * HOT_VALUE_SHARE,
            "warnings_day": residents / 10_000 * WARNINGS_PER_10K_DAY,
            "redis": residents / 10_000 * WARNINGS_PER_10K_DAY * (8 * REDIS_8D + 30 * REDIS_30D),
            "esc_slot": residents / 10_000 * WARNINGS_PER_10K_DAY * 8 * REDIS_ESC_SLOT,
            "feed_slot": residents / 10_000 * WARNINGS_PER_10K_DAY * 30 * REDIS_FEED_SLOT,
            "disk": disk, "ingress": ingress, "brokers": max(3, brokers_disk, brokers_net),
            "brokers_disk": brokers_disk, "brokers_net": brokers_net}


def main() -> None:
    rows = {name: row(n) for name, n in PLACES.items()}
    print(f"{'':<18s}" + "".join(f"{name:>14s}" for name in rows))
    for figure in next(iter(rows.values())):
        print(f"{figure:<18s}" + "".join(f"{r[figure]:>14,.4g}" for r in rows.values()))


if __name__ == "__main__":
    main()
