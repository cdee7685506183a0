"""Mapping views over Faust tables, so that the pure stages can read and write table entries as a dict."""
from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from streams.value_index import ENTRY_SEPARATOR, Entry, decode_entry, encode_entry, entry_key


class ValueEntries(MutableMapping[str, Entry]):
    """The per-person entries of one value, stored as their own small keys in the `values` table, encoded: a
    person is listed under about a hundred values, and an entry takes 5× the memory as an object (docs/sizing.md).

    Every key is written while processing a message of the value's partition, so it lives in that partition's
    changelog and moves with it on a rebalance. Iteration is not supported: the value's head lists its people.
    """

    def __init__(self, table: Any, value_key: str) -> None:
        self._table = table
        self._value_key = value_key

    def _key(self, person: str) -> bytes:
        return entry_key(self._value_key, person).encode()

    def __getitem__(self, person: str) -> Entry:
        raw = self._table.get(self._key(person))
        if raw is None:
            raise KeyError(person)
        return decode_entry(raw)

    def get(self, person: str, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        raw = self._table.get(self._key(person))
        return decode_entry(raw) if raw is not None else default

    def __setitem__(self, person: str, entry: Entry) -> None:
        self._table[self._key(person)] = encode_entry(entry)

    def __delitem__(self, person: str) -> None:
        self._table.pop(self._key(person), None)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("value entries are listed by the value's head, not iterated")

    def __len__(self) -> int:
        raise TypeError("value entries are counted by the value's head")


def values_listing(values: Any, person: str) -> list[str]:
    """The values a person has an entry under, among the keys of the partition being processed (a table that
    knows its partitions: `active_keys`; a dict: all of them)."""
    suffix = (ENTRY_SEPARATOR + person).encode()
    keys = values.active_keys() if hasattr(values, "active_keys") else list(values)
    return [k[: -len(suffix)].decode() for k in keys if k.endswith(suffix)]
