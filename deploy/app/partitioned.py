"""A table in memory, partitioned as the input it is written from, whose changes go to its changelog per checkpoint.

As a Faust table: reads see every key the worker holds; a write belongs to the partition of the record being
processed (`active`), so it lives in that partition's changelog and moves with it. Unlike a Faust table, a
write is not sent at once: the keys changed since the last checkpoint are collected, and each goes to the
changelog once, with its latest value (Kafka Streams' record cache, quix-streams' checkpoint).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any


def _same(value: Any) -> Any:
    return value


class PartitionedTable(MutableMapping[bytes, Any]):
    """Keys to values over the partitions this worker holds; `changes` gives what a checkpoint writes.

    Values are kept as the stages use them (bytes, or objects with `encode` and `decode` for the changelog)."""

    def __init__(self, name: str, encode: Callable[[Any], bytes] = _same,
                 decode: Callable[[bytes], Any] = _same) -> None:
        self.name = name
        self.encode, self.decode = encode, decode
        self.active = -1  # the partition of the record being processed; writes belong to it
        self._data: dict[bytes, Any] = {}
        self._owner: dict[bytes, int] = {}
        self._dirty: dict[int, set[bytes]] = {}
        self._written: set[bytes] = set()  # keys whose changelog holds a value: only they need a tombstone

    def __getitem__(self, key: bytes) -> Any:
        return self._data[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __setitem__(self, key: bytes, value: Any) -> None:
        self._data[key] = value
        self._own(key)

    def __delitem__(self, key: bytes) -> None:
        del self._data[key]
        self._own(key)

    _missing = object()

    def pop(self, key: bytes, default: Any = _missing) -> Any:
        if key not in self._data:
            if default is PartitionedTable._missing:
                raise KeyError(key)
            return default
        value = self._data.pop(key)
        self._own(key)
        return value

    def _own(self, key: bytes) -> None:
        if self.active < 0:
            raise RuntimeError(f"table {self.name}: a write outside any partition")
        self._owner[key] = self.active
        self._dirty.setdefault(self.active, set()).add(key)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def changes(self) -> dict[int, list[tuple[bytes, bytes | None]]]:
        """The keys changed since the last `settle`, per partition, with their values now, encoded (None: deleted).

        A key set and deleted again in between (a decision that waited less than a checkpoint) is left out: its
        changelog never had it. Nothing changes here until `settle`: a checkpoint that fails writes them later."""
        out: dict[int, list[tuple[bytes, bytes | None]]] = {}
        data, written = self._data, self._written
        for p, keys in self._dirty.items():
            changed = []
            for key in sorted(keys):
                value = data.get(key)
                if value is not None:
                    changed.append((key, self.encode(value)))
                elif key in written:
                    changed.append((key, None))
            if changed:
                out[p] = changed
        return out

    def settle(self) -> None:
        """What `changes` gave is in the changelog: the keys are clean again."""
        for keys in self._dirty.values():
            for key in keys:
                if key in self._data:
                    self._written.add(key)
                else:  # its tombstone is written (or it never was): nothing is left of it here
                    self._written.discard(key)
                    self._owner.pop(key, None)
        self._dirty = {}

    def load(self, partition: int, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Take a partition's keys in from its changelog, in the changelog's order (None: a deletion)."""
        for key, value in items:
            if value is None:
                if self._owner.get(key) == partition:
                    self._data.pop(key, None)
                    del self._owner[key]
                    self._written.discard(key)
            else:
                self._data[key] = self.decode(value)
                self._owner[key] = partition
                self._written.add(key)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget these partitions' keys (they moved away; their changelog keeps them).

        Call it after a checkpoint: what was changed and not yet written is lost with them."""
        gone = set(partitions)
        for key in [k for k, p in self._owner.items() if p in gone]:
            del self._owner[key]
            self._data.pop(key, None)
            self._written.discard(key)
            for p in gone:
                self._dirty.get(p, set()).discard(key)
