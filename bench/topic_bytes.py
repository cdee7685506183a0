"""Records and bytes per topic on a broker: what a signal costs on disk, and what the tables' changelogs hold.

    .venv/bin/python -m bench.topic_bytes --logs DATA/kafka/logs [--bootstrap 127.0.0.1:9092]

Reads every record of every topic whose folders are under `--logs` (the local stack's `DATA/kafka/logs`; topics
starting with `__` are left out) from the beginning, committed transactions only, and counts per topic: records,
key and value bytes, and the providers' progress records apart (`progress:` keys, docs/schemas.md), beside the
bytes of the topic's log segments on disk (`*.log` files; a compacted topic's segments may still hold records the
cleaner has not removed yet). The overhead per record is (disk - keys - values) / records: batch headers, offsets,
timestamps and the transaction markers. For a compacted changelog the live keys are also counted (its size once
compacted: what a worker restores).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

PROGRESS = b"progress:"


def disk_bytes(logs: Path) -> dict[str, int]:
    """Bytes of `*.log` segment files per topic under a broker's log folder."""
    sizes: dict[str, int] = defaultdict(int)
    for folder in logs.iterdir():
        if not folder.is_dir() or folder.name.startswith("__") or "-" not in folder.name:
            continue
        topic, _, partition = folder.name.rpartition("-")
        if not partition.isdigit():
            continue
        sizes[topic] += sum(f.stat().st_size for f in folder.glob("*.log"))
    return dict(sizes)


def read_topic(bootstrap: str, topic: str) -> dict[str, float]:
    """Records, progress records, key and value bytes and live keys of one topic, read from its beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             isolation_level="read_committed", consumer_timeout_ms=3000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out = {"records": 0, "progress": 0, "key_bytes": 0, "value_bytes": 0, "signal_key_value_bytes": 0}
        live: dict[tuple[int, bytes], int] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            polled = consumer.poll(timeout_ms=1000, max_records=10_000)
            if not polled and all(consumer.position(tp) >= ends[tp] - 1 for tp in tps):
                break  # only a transaction marker left
            for batch in polled.values():
                for m in batch:
                    k, v = len(m.key or b""), len(m.value or b"")
                    out["records"] += 1
                    out["key_bytes"] += k
                    out["value_bytes"] += v
                    if (m.key or b"").startswith(PROGRESS):
                        out["progress"] += 1
                    else:
                        out["signal_key_value_bytes"] += k + v
                    if m.key is not None:
                        if m.value is None:
                            live.pop((m.partition, m.key), None)
                        else:
                            live[(m.partition, m.key)] = k + v
        out["live_keys"] = len(live)
        out["live_key_value_bytes"] = sum(live.values())
        return out
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", required=True, help="the broker's log folder (DATA/kafka/logs)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topics", nargs="*", help="only these topics (default: every topic on disk)")
    args = parser.parse_args()
    disk = disk_bytes(Path(args.logs))
    topics = args.topics or sorted(disk)
    print(f"{'topic':<30s} {'records':>9s} {'progress':>8s} {'key+value B':>12s} {'on disk B':>11s} "
          f"{'B/record k+v':>12s} {'overhead/rec':>12s} {'live keys':>9s} {'live k+v B':>11s}")
    for topic in topics:
        r = read_topic(args.bootstrap, topic)
        n = max(r["records"], 1)
        kv = r["key_bytes"] + r["value_bytes"]
        print(f"{topic:<30s} {r['records']:>9,} {r['progress']:>8,} {kv:>12,} {disk.get(topic, 0):>11,} "
              f"{kv / n:>12.1f} {(disk.get(topic, 0) - kv) / n:>12.1f} {r['live_keys']:>9,} "
              f"{r['live_key_value_bytes']:>11,}")


if __name__ == "__main__":
    main()
