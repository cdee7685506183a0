"""A table in memory, partitioned as the input it is written from, whose changes go to its changelog per checkpoint.

As a Faust table: reads see every key the worker holds; a write belongs to the partition of the record being
processed (`active`), so it lives in that partition's changelog and moves with it. Unlike a Faust table, a
write is not sent at once: the keys changed since the last checkpoint are collected, and each goes to the
changelog once, with its latest value (Kafka Streams' record cache, quix-streams' checkpoint).

A checkpoint takes the changes (`take`) and writes them while the stages go on changing the table; then it
`settle`s them (written) or `abort`s them (given back to the next one). One checkpoint at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any
from uuid import uuid4

import msgspec

Records = list[tuple[bytes, bytes | None]]  # changelog records: keys and encoded values (None: a tombstone)
Changes = dict[int, Records]  # per partition, the changelog records of a checkpoint
Taken = Iterator[tuple[int, Records]]  # a checkpoint's changes, a partition at a time


def _same(value: Any) -> Any:
    return value


class PartitionedTable(MutableMapping[bytes, Any]):
    """Keys to values over the partitions this worker holds; `take` gives what a checkpoint writes.

    Values are kept as the stages use them (bytes, or objects with `encode` and `decode` for the changelog)."""

    def __init__(self, name: str, encode: Callable[[Any], bytes] = _same,
                 decode: Callable[[bytes], Any] = _same) -> None:
        self.name = name
        self.encode, self.decode = encode, decode
        self.active = -1  # the partition of the record being processed; writes belong to it
        self._data: dict[bytes, Any] = {}
        self._owner: dict[bytes, int] = {}
        self._dirty: dict[int, set[bytes]] = {}
        # the keys of the checkpoint being written, each with whether a value of it is (else a tombstone or nothing)
        self._taken: dict[int, dict[bytes, bool]] = {}
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

    def _writer(self) -> int:
        """The partition a write now belongs to (refused outside any)."""
        if self.active < 0:
            raise RuntimeError(f"table {self.name}: a write outside any partition")
        return self.active

    def _own(self, key: bytes) -> None:
        p = self._owner[key] = self._writer()
        self._dirty.setdefault(p, set()).add(key)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def active_keys(self) -> list[bytes]:
        """The keys of the partition being processed (the only ones a write now may change)."""
        active = self._writer()
        return [k for k, p in self._owner.items() if p == active and k in self._data]

    def __len__(self) -> int:
        return len(self._data)

    def changes(self) -> Changes:
        """Take the keys changed since the last checkpoint, per partition, with their values now, encoded (None:
        deleted); changes made from now on go to the next checkpoint.

        A key set and deleted again in between (a decision that waited less than a checkpoint) is left out: its
        changelog never had it."""
        return dict(self.take())

    def take(self) -> Taken:
        """`changes` a partition at a time: taken at the call, encoded as they are asked for (the caller may let the
        event loop run in between, changing nothing); `abort` gives back all of it, asked for or not."""
        if self._taken:
            raise RuntimeError(f"table {self.name}: a checkpoint is still being written")
        data = self._data
        dirty, self._dirty = self._dirty, {}
        for p, keys in dirty.items():
            self._taken[p] = {key: data.get(key) is not None for key in keys}
        return self._encoded(dict(self._taken))

    def _encoded(self, taken: dict[int, dict[bytes, bool]]) -> Taken:
        data, written = self._data, self._written
        for p, keys in taken.items():
            changed = [(key, self.encode(data[key]) if valued else None) for key, valued in sorted(keys.items())
                       if valued or key in written]
            if changed:
                yield p, changed

    def settle(self) -> None:
        """What `take` took is in the changelog."""
        for keys in self._taken.values():
            for key, valued in keys.items():
                if valued:
                    self._written.add(key)
                else:  # its tombstone is written (or it never was)
                    self._written.discard(key)
                    if key not in self._data:  # unless set again since: nothing is left of it here
                        self._owner.pop(key, None)
        self._taken = {}

    def abort(self) -> None:
        """What `take` took was not written: the next checkpoint takes it again, with its values then."""
        for p, keys in self._taken.items():
            self._dirty.setdefault(p, set()).update(keys)
        self._taken = {}

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
            self._dirty.pop(p, None)
            self._taken.pop(p, None)


CHUNK_BYTES = 256 * 1024  # per changelog record: far below the broker's 1 MB default, as envelopes are


def chunk_items(key: bytes, raw: bytes) -> list[tuple[bytes, bytes]]:
    """The keys and encoded values one record of a chunked changelog holds: a chunk's (key b"<partition>|#<id>"),
    or the record's own (written per key, before chunks)."""
    if key.split(b"|", 1)[-1].startswith(b"#"):
        return [(k, v) for k, v in msgspec.msgpack.decode(raw)]
    return [(key, raw)]


def _chunk_partition(chunk: bytes) -> int:
    return int(chunk.split(b"|", 1)[0])


class ChunkedTable(PartitionedTable):
    """A table of short-lived keys (decisions waiting for the watermark) whose changelog gets one record per
    partition per checkpoint: the keys added since the last one, together (a chunk). A chunk gets its tombstone once
    every key in it is gone; until then, keys gone from it stay in its record, and whoever reads the table back
    drops them (`Processor.drop_taken`: what is below the partition's decided watermark was taken).

    Per key, a waiting decision would cost two changelog records (its value, then its tombstone) whenever it
    waits longer than a checkpoint, which is most of them when the pipeline runs flat out."""

    def __init__(self, name: str, encode: Callable[[Any], bytes] = _same,
                 decode: Callable[[bytes], Any] = _same) -> None:
        super().__init__(name, encode, decode)
        self._chunk_of: dict[bytes, bytes] = {}  # key → the chunk its value was written in
        self._members: dict[bytes, set[bytes]] = {}  # chunk → its keys still here
        self._fresh: dict[int, dict[bytes, None]] = {}  # per partition, keys set since the last checkpoint
        self._dead: dict[int, set[bytes]] = {}  # per partition, written chunks with no key left: tombstones due
        self._next: dict[int, list[tuple[bytes, list[bytes]]]] = {}  # the chunks `take` made (for `settle`)
        self._taken_fresh: dict[int, dict[bytes, None]] = {}  # what `take` took (for `abort`)
        self._taken_dead: dict[int, set[bytes]] = {}

    def __setitem__(self, key: bytes, value: Any) -> None:
        p = self._writer()
        self._leave_chunk(key)
        self._data[key] = value
        self._owner[key] = p
        self._fresh.setdefault(p, {})[key] = None

    def __delitem__(self, key: bytes) -> None:
        if key not in self._data:
            raise KeyError(key)
        self.pop(key)

    def pop(self, key: bytes, default: Any = PartitionedTable._missing) -> Any:
        if key not in self._data:
            if default is PartitionedTable._missing:
                raise KeyError(key)
            return default
        self._writer()
        partition = self._owner.pop(key)
        self._fresh.get(partition, {}).pop(key, None)
        self._leave_chunk(key)
        return self._data.pop(key)

    def _leave_chunk(self, key: bytes) -> None:
        chunk = self._chunk_of.pop(key, None)
        if chunk is not None:
            members = self._members[chunk]
            members.discard(key)
            if not members:
                del self._members[chunk]
                self._dead.setdefault(_chunk_partition(chunk), set()).add(chunk)

    def take(self) -> Taken:
        """Per partition, a new chunk with the keys set since the last checkpoint (encoded), and the tombstones of
        the chunks emptied since (see `PartitionedTable.take`)."""
        if self._next or self._taken_fresh or self._taken_dead:
            raise RuntimeError(f"table {self.name}: a checkpoint is still being written")
        self._taken_fresh, self._taken_dead = self._fresh, self._dead
        self._fresh, self._dead = {}, {}
        return self._chunks(self._taken_fresh, self._taken_dead)

    def _chunks(self, fresh: dict[int, dict[bytes, None]],
                dead: dict[int, set[bytes]]) -> Taken:
        for p in sorted(set(fresh) | set(dead)):
            records: Records = [(chunk, None) for chunk in sorted(dead.get(p, ()))]
            part: list[list[bytes]] = []
            size = 0
            for key in fresh.get(p, {}):
                if key not in self._data:
                    continue
                value = self.encode(self._data[key])
                if part and size + len(key) + len(value) > CHUNK_BYTES:
                    records.append(self._chunk(p, part))
                    part, size = [], 0
                part.append([key, value])
                size += len(key) + len(value)
            if part:
                records.append(self._chunk(p, part))
            if records:
                yield p, records

    def _chunk(self, partition: int, items: list[list[bytes]]) -> tuple[bytes, bytes]:
        chunk = b"%d|#%s" % (partition, uuid4().hex.encode())
        self._next.setdefault(partition, []).append((chunk, [key for key, _ in items]))
        return chunk, msgspec.msgpack.encode(items)

    def settle(self) -> None:
        """What `take` took is in the changelog: its keys belong to their chunk now, unless they left since
        (taken, or set again: then in the next chunk); a chunk left with none is tombstoned next time."""
        for p, chunks in self._next.items():
            again = self._fresh.get(p, {})
            for chunk, keys in chunks:
                members = {key for key in keys if key in self._data and key not in again}
                if not members:
                    self._dead.setdefault(p, set()).add(chunk)
                    continue
                self._members[chunk] = members
                for key in members:
                    self._chunk_of[key] = chunk
        self._next, self._taken_fresh, self._taken_dead = {}, {}, {}

    def abort(self) -> None:
        """What `take` took was not written: its keys and tombstones go with the next checkpoint."""
        for p, keys in self._taken_fresh.items():
            self._fresh[p] = keys | self._fresh.get(p, {})
        for p, chunks in self._taken_dead.items():
            self._dead.setdefault(p, set()).update(chunks)
        self._next, self._taken_fresh, self._taken_dead = {}, {}, {}

    def load(self, partition: int, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Take a partition's chunks in from its changelog (None: a chunk emptied; a key of its own: a record
        written per key, before chunks)."""
        for chunk, raw in items:
            members = self._members.pop(chunk, set())
            for key in members:  # a tombstone, or a chunk written again: its keys leave with the old record
                self._data.pop(key, None)
                self._owner.pop(key, None)
                self._chunk_of.pop(key, None)
            if raw is None:
                continue
            for key, value in chunk_items(chunk, raw):
                self._leave_chunk(key)
                self._data[key] = self.decode(value)
                self._owner[key] = partition
                self._chunk_of[key] = chunk
                members.add(key)
            self._members[chunk] = members

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget these partitions' keys and chunks (they moved away; their changelog keeps them)."""
        gone = set(partitions)
        for key in [k for k, p in self._owner.items() if p in gone]:
            del self._owner[key]
            self._data.pop(key, None)
            self._chunk_of.pop(key, None)
        for chunk in [c for c in self._members if _chunk_partition(c) in gone]:
            del self._members[chunk]
        for p in gone:
            for held in (self._fresh, self._dead, self._next, self._taken_fresh, self._taken_dead):
                held.pop(p, None)
