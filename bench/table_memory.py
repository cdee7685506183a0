"""Memory of the hot path's tables: each kind of value as an object against its encoded form, and which a worker keeps.

    .venv/bin/python -m bench.table_memory --residents 3000 --days 2

Replays a simulated city in one process (`streams.local`), then measures every person state, value head and
index entry as an object (`sys.getsizeof` over its fields, each object counted once) and as the bytes object of
its changelog encoding. A worker keeps states and heads as objects (decoded once, not per event), entries encoded.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

import msgspec

from scorers.lab.city import City, CityConfig
from scorers.lab.recording import feed_city
from streams.local import LocalPipeline
from streams.value_index import ValueHead, decode_entry


def deep_size(obj: Any, seen: set[int]) -> int:
    """The bytes of `obj` and of everything it holds that `seen` has not counted yet."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, msgspec.Struct):
        size += sum(deep_size(getattr(obj, f), seen) for f in obj.__struct_fields__)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(deep_size(x, seen) for x in obj)
    elif isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    return size


def measure(name: str, objects: Iterable[Any], kept: str) -> dict[str, Any]:
    """Count and mean bytes of one kind of table value as objects and encoded (a bytes object each)."""
    items = list(objects)
    seen: set[int] = set()
    as_objects = sum(deep_size(v, seen) for v in items)
    encoded = sum(sys.getsizeof(msgspec.msgpack.encode(v)) for v in items)
    n = max(len(items), 1)
    return {"kind": name, "count": len(items), "object_bytes": round(as_objects / n),
            "encoded_bytes": round(encoded / n), "object_mib": as_objects / 2**20, "encoded_mib": encoded / 2**20,
            "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=3000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pipeline = LocalPipeline()
    feed_city(City(CityConfig(residents=args.residents, days=args.days, seed=args.seed)), pipeline)
    values = pipeline.processor.values
    rows = [measure("person state", pipeline.processor.persons.values(), "object"),
            measure("value head", [v for v in values.values() if isinstance(v, ValueHead)], "object"),
            measure("index entry", [decode_entry(v) for k, v in values.items() if b"\x1f" in k], "encoded")]
    for r in rows:
        print(f"{r['kind']:13s} {r['count']:>8,}  object {r['object_bytes']:>6,} B ({r['object_mib']:.1f} MiB)  "
              f"encoded {r['encoded_bytes']:>6,} B ({r['encoded_mib']:.1f} MiB)  kept {r['kept']}")
    kept = sum(r["object_mib"] if r["kept"] == "object" else r["encoded_mib"] for r in rows) * 2**20
    print(f"kept per resident: {kept / args.residents:,.0f} B; all encoded: "
          f"{sum(r['encoded_mib'] for r in rows) * 2**20 / args.residents:,.0f} B")

if __name__ == "__main__":
    main()
