"""The hot path's table: writes belong to the active partition, a checkpoint writes each changed key once."""
from __future__ import annotations

import pytest

from deploy.app.partitioned import PartitionedTable


def checkpoint(table: PartitionedTable) -> dict[int, list[tuple[bytes, bytes | None]]]:
    changes = table.changes()
    table.settle()
    return changes


def test_a_checkpoint_writes_each_changed_key_once_with_its_latest_value() -> None:
    table = PartitionedTable("persons")
    table.active = 2
    table[b"a"] = b"1"
    table[b"a"] = b"2"
    table[b"b"] = b"x"
    table.active = 5
    table[b"c"] = b"y"
    assert checkpoint(table) == {2: [(b"a", b"2"), (b"b", b"x")], 5: [(b"c", b"y")]}
    assert checkpoint(table) == {}  # nothing changed since
    assert table[b"a"] == b"2" and len(table) == 3 and set(table) == {b"a", b"b", b"c"}


def test_changes_not_settled_are_given_again_with_what_changed_since() -> None:
    table = PartitionedTable("persons")
    table.active = 1
    table[b"a"] = b"1"
    assert table.changes() == {1: [(b"a", b"1")]}  # a checkpoint that failed: nothing settled
    table[b"b"] = b"2"
    assert checkpoint(table) == {1: [(b"a", b"1"), (b"b", b"2")]}


def test_a_deleted_key_gets_a_tombstone_only_when_its_changelog_had_it() -> None:
    table = PartitionedTable("pending")
    table.active = 0
    table[b"kept"] = b"1"
    checkpoint(table)
    table[b"passing"] = b"2"  # set and deleted between two checkpoints: the changelog never sees it
    del table[b"passing"]
    assert table.pop(b"kept") == b"1"
    assert table.pop(b"never", None) is None
    assert checkpoint(table) == {0: [(b"kept", None)]}
    table[b"kept"] = b"3"  # back again: a value
    assert checkpoint(table) == {0: [(b"kept", b"3")]}


def test_values_are_encoded_for_the_changelog_and_decoded_from_it() -> None:
    table = PartitionedTable("persons", encode=lambda v: str(v).encode(), decode=lambda b: int(b))
    table.load(0, [(b"a", b"7")])
    assert table[b"a"] == 7
    table.active = 0
    table[b"a"] += 1
    assert checkpoint(table) == {0: [(b"a", b"8")]}


def test_a_write_outside_any_partition_is_refused() -> None:
    with pytest.raises(RuntimeError):
        PartitionedTable("persons")[b"a"] = b"1"


def test_partitions_are_loaded_from_their_changelog_and_dropped() -> None:
    table = PartitionedTable("marks")
    table.load(3, [(b"yujing.events/3", b"e"), (b"gone", b"x"), (b"gone", None)])
    table.load(4, [(b"yujing.events/4", b"f")])
    assert dict(table) == {b"yujing.events/3": b"e", b"yujing.events/4": b"f"}
    assert checkpoint(table) == {}  # what was read back is what the changelog has
    table.active = 4
    table[b"yujing.events/4"] = b"g"
    table.drop([4])  # moved away before a checkpoint: its changes go with it
    assert checkpoint(table) == {} and dict(table) == {b"yujing.events/3": b"e"}
    table.active = 3
    del table[b"yujing.events/3"]  # loaded from the changelog: its deletion is written
    assert checkpoint(table) == {3: [(b"yujing.events/3", None)]}
    with pytest.raises(KeyError):
        table.pop(b"yujing.events/3")  # as a dict: no default, no key
