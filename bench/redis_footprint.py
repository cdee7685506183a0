"""What the pipeline keeps in Redis: keys and memory by kind of key.

    .venv/bin/python -m bench.redis_footprint --url redis://127.0.0.1:6379/0 [--warnings N] [--residents N]

Scans every key (SCAN, read-only), and groups them by kind: the pipeline's prefix (`<app id>:`) and a hash tag's
braces (`{yujing:feed}:q:G0012` and `yujing:feed:q:G0012` are the same kind) are taken off, and the key is cut at
its first part that looks like an id (has a digit or is long): `cooldown:P0000123` is `cooldown:*`. Per kind it
prints the keys, their elements (a hash's fields, a sorted set's members, a stream's entries), `MEMORY USAGE`
summed (SAMPLES 0: every element counted) and how many keys expire. With `--warnings` and `--residents` it also
prints the bytes per warning and per resident. Run it after `yujing demo --keep` (or against any Redis the
pipeline uses) with the demo's warnings count.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from dataclasses import dataclass

import redis

TAG = re.compile(r"\{([^}]*)\}")
LENGTH = {"hash": "hlen", "zset": "zcard", "set": "scard", "list": "llen", "stream": "xlen"}


def looks_like_id(part: str) -> bool:
    """A key part that names one thing (a person, a warning, a grid, a partition), not a kind of key."""
    return any(c.isdigit() for c in part) or len(part) >= 20


def kind_of(key: str, prefix: str) -> str:
    """The key's kind: without a hash tag's braces and the prefix, cut at its first id-like part."""
    key = TAG.sub(r"\1", key)
    if prefix and key.startswith(prefix):
        key = key[len(prefix):]
    parts = []
    for part in key.split(":"):
        if looks_like_id(part):
            parts.append("*")
            break
        parts.append(part)
    return ":".join(parts)


@dataclass
class Kind:
    """What one kind of key holds, summed over its keys."""

    types: set[str]
    keys: int = 0
    elements: int = 0
    memory: int = 0
    expiring: int = 0


def footprint(client: redis.Redis, prefix: str) -> dict[str, Kind]:
    """Every key's kind, type, elements, memory and whether it expires."""
    kinds: dict[str, Kind] = defaultdict(lambda: Kind(set()))
    batch: list[str] = []

    def measure(keys: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.type(k)
            pipe.memory_usage(k, samples=0)
            pipe.pttl(k)
        replies = pipe.execute()
        pipe = client.pipeline(transaction=False)
        types = [replies[3 * i] for i in range(len(keys))]
        for k, t in zip(keys, types):
            if t in LENGTH:
                getattr(pipe, LENGTH[t])(k)
            else:
                pipe.exists(k)  # a string: one element
        lengths = pipe.execute()
        for i, k in enumerate(keys):
            t, mem, ttl = types[i], replies[3 * i + 1], replies[3 * i + 2]
            if t == "none":  # gone between the scan and now
                continue
            kind = kinds[kind_of(k, prefix)]
            kind.types.add(t)
            kind.keys += 1
            kind.elements += int(lengths[i] or 0)
            kind.memory += int(mem or 0)
            kind.expiring += ttl is not None and ttl >= 0

    for key in client.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= 500:
            measure(batch)
            batch = []
    if batch:
        measure(batch)
    return dict(kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="yujing:", help="the pipeline's key prefix (`<topic prefix><app id>:`)")
    parser.add_argument("--warnings", type=int, help="warnings the data came from: prints bytes per warning")
    parser.add_argument("--residents", type=int, help="residents the data came from: prints bytes per resident")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.url, decode_responses=True)
    info = client.info("memory")
    kinds = footprint(client, args.prefix)
    per = [(label, n) for label, n in (("warning", args.warnings), ("resident", args.residents)) if n]
    head = f"{'kind':<34s} {'type':<7s} {'keys':>7s} {'elements':>9s} {'MEMORY USAGE':>13s} {'B/key':>7s} {'expire':>6s}"
    print(head + "".join(f" {'B/' + label:>11s}" for label, _ in per))
    for name, k in sorted(kinds.items(), key=lambda kv: -kv[1].memory):
        print(f"{name:<34s} {'/'.join(sorted(k.types)):<7s} {k.keys:>7,} {k.elements:>9,} {k.memory:>13,} "
              f"{k.memory / k.keys:>7,.0f} {k.expiring:>6,}" + "".join(f" {k.memory / n:>11,.1f}" for _, n in per))
    total = sum(k.memory for k in kinds.values())
    print(f"{'all keys':<34s} {'':<7s} {sum(k.keys for k in kinds.values()):>7,} "
          f"{sum(k.elements for k in kinds.values()):>9,} {total:>13,}" + " " * 15
          + "".join(f" {total / n:>11,.1f}" for _, n in per))
    print(f"DBSIZE {client.dbsize():,}; INFO memory: used_memory {info['used_memory']:,} B, "
          f"used_memory_dataset {info.get('used_memory_dataset', 0):,} B, "
          f"used_memory_startup {info.get('used_memory_startup', 0):,} B")


if __name__ == "__main__":
    main()
