"""The hot path's table: writes belong to the active partition, a checkpoint writes each changed key once."""
from __future__ import annotations

import msgspec
import pytest

from deploy.app.partitioned import CHUNK_BYTES, ChunkedTable, PartitionedTable
from schemas.internal import Contact, ValueMessage
from schemas.records import Indicator
from schemas.units import HOUR_MS
from streams.person_state import StatePolicy
from streams.processor import Processor
from streams.value_index import IndexPolicy, encode_stored


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


def test_changes_of_a_checkpoint_that_failed_are_given_again_with_what_changed_since() -> None:
    table = PartitionedTable("persons")
    table.active = 1
    table[b"a"] = b"1"
    assert table.changes() == {1: [(b"a", b"1")]}
    table[b"b"] = b"2"  # while it is written
    table.abort()
    assert checkpoint(table) == {1: [(b"a", b"1"), (b"b", b"2")]}


def test_one_checkpoint_at_a_time() -> None:
    for table in (PartitionedTable("persons"), ChunkedTable("pending")):
        table.active = 0
        table[b"0|a"] = b"1"
        table.changes()
        with pytest.raises(RuntimeError):
            table.changes()
        table.settle()
        assert checkpoint(table) == {}


def test_a_checkpoint_taken_a_partition_at_a_time_and_abandoned_gives_all_of_it_back() -> None:
    for table in (PartitionedTable("persons"), ChunkedTable("pending")):
        for p in (1, 2):
            table.active = p
            table[b"%d|a" % p] = b"A%d" % p
        parts = table.take()
        first, records = next(parts)  # the second partition is never asked for (the checkpoint failed)
        assert first == 1 and records
        with pytest.raises(RuntimeError):
            table.changes()  # what it took is still taken
        table.abort()
        again = checkpoint(table)
        assert sorted(again) == [1, 2], table.name
        assert checkpoint(table) == {}


def test_changes_made_while_a_checkpoint_is_written_go_with_the_next() -> None:
    table = PartitionedTable("persons")
    table.active = 0
    table[b"kept"] = b"1"
    table[b"gone"] = b"1"
    checkpoint(table)
    table[b"new"] = b"2"
    del table[b"gone"]
    assert table.changes() == {0: [(b"gone", None), (b"new", b"2")]}
    table[b"gone"] = b"3"  # back while its tombstone is written
    del table[b"new"]  # its value is being written: it needs a tombstone after it
    table.settle()
    assert checkpoint(table) == {0: [(b"gone", b"3"), (b"new", None)]}
    assert dict(table) == {b"kept": b"1", b"gone": b"3"}
    del table[b"gone"]
    assert checkpoint(table) == {0: [(b"gone", None)]}
    assert checkpoint(table) == {}


def test_a_key_set_again_while_its_tombstone_is_written_stays_its_partitions() -> None:
    table = PartitionedTable("persons")
    table.active = 0
    table[b"a"] = b"1"
    checkpoint(table)
    del table[b"a"]
    table.changes()
    table[b"a"] = b"2"
    table.settle()
    table.drop([0])  # the partition moved away: everything of it goes
    assert dict(table) == {}


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


def test_waiting_keys_go_to_the_changelog_as_one_chunk_per_partition_per_checkpoint() -> None:
    table = ChunkedTable("pending")
    table.active = 1
    table[b"1|a"] = b"A"
    table[b"1|b"] = b"B"
    table[b"1|passing"] = b"P"  # set and taken between two checkpoints: in no chunk
    del table[b"1|passing"]
    table.active = 2
    table[b"2|c"] = b"C"
    first = checkpoint(table)
    assert sorted(first) == [1, 2] and all(len(records) == 1 for records in first.values())
    (chunk1, raw1), = first[1]
    assert chunk1.startswith(b"1|#") and msgspec.msgpack.decode(raw1) == [[b"1|a", b"A"], [b"1|b", b"B"]]
    table.active = 1
    table.pop(b"1|a")  # its chunk still holds b: no record
    table[b"1|d"] = b"D"
    (chunk2, raw2), = checkpoint(table)[1]
    assert msgspec.msgpack.decode(raw2) == [[b"1|d", b"D"]]
    table.pop(b"1|b")  # the first chunk is empty now: its tombstone
    assert checkpoint(table) == {1: [(chunk1, None)]}
    assert dict(table) == {b"1|d": b"D", b"2|c": b"C"}


def test_a_chunk_emptied_before_a_checkpoint_that_failed_is_written_with_the_next() -> None:
    table = ChunkedTable("pending")
    table.active = 0
    table[b"0|a"] = b"A"
    (chunk, _), = checkpoint(table)[0]
    table.pop(b"0|a")
    table[b"0|b"] = b"B"
    failed = table.changes()
    table.abort()  # the transaction was aborted
    records = table.changes()
    assert records[0][0] == (chunk, None) and failed[0][0] == (chunk, None)
    assert msgspec.msgpack.decode(records[0][1][1]) == [[b"0|b", b"B"]] and records[0][1][0] != failed[0][1][0]
    table.settle()
    assert checkpoint(table) == {}


def test_waiting_keys_are_read_back_from_chunks_tombstones_and_records_of_their_own() -> None:
    table = ChunkedTable("pending", encode=lambda v: v.upper(), decode=lambda b: b.lower())
    first = msgspec.msgpack.encode([[b"3|a", b"A"], [b"3|b", b"B"]])
    second = msgspec.msgpack.encode([[b"3|c", b"C"]])
    table.load(3, [(b"3|#1", first), (b"3|old", b"O"), (b"3|#2", second), (b"3|#2", None), (b"3|gone", b"G"),
                   (b"3|gone", None)])
    assert dict(table) == {b"3|a": b"a", b"3|b": b"b", b"3|old": b"o"}
    assert checkpoint(table) == {}  # what was read back is what the changelog has
    table.active = 3
    table.pop(b"3|a")
    table.pop(b"3|old")  # a record of its own (written before chunks): its own tombstone
    assert checkpoint(table) == {3: [(b"3|old", None)]}
    table.pop(b"3|b")
    assert checkpoint(table) == {3: [(b"3|#1", None)]}
    table.load(4, [(b"4|#9", msgspec.msgpack.encode([[b"4|x", b"X"]]))])
    table.drop([4])
    assert dict(table) == {} and checkpoint(table) == {}


def test_a_chunk_stays_under_its_size_and_a_key_set_again_moves_to_the_new_chunk() -> None:
    table = ChunkedTable("pending")
    table.active = 0
    big = b"v" * (CHUNK_BYTES // 3)
    for k in (b"0|a", b"0|b", b"0|c", b"0|d"):
        table[k] = big
    records = checkpoint(table)[0]
    assert len(records) == 2 and all(len(raw) < CHUNK_BYTES + 1000 for _, raw in records)
    first, second = records
    table[b"0|a"] = b"again"  # set again: the new value goes in a new chunk
    table.pop(b"0|b")
    table.pop(b"0|c")  # the first chunk (a, b) is empty now
    (tomb, none), (third, raw) = checkpoint(table)[0]
    assert (tomb, none) == (first[0], None) and msgspec.msgpack.decode(raw) == [[b"0|a", b"again"]]
    again = ChunkedTable("pending")
    again.load(0, [first, second, (third, raw), (tomb, None)])  # the changelog, read back in its order
    # c was taken, but its chunk is still there for d: it comes back, for the reader to drop (`drop_taken`)
    assert dict(again) == {b"0|a": b"again", b"0|c": big, b"0|d": big}
    again.active = 0
    for key in (b"0|a", b"0|c", b"0|d"):
        again.pop(key)
    assert sorted(checkpoint(again)[0]) == sorted([(second[0], None), (third, None)])


def test_waiting_keys_that_leave_while_their_chunk_is_written_leave_it() -> None:
    table = ChunkedTable("pending")
    table.active = 0
    for key in (b"0|a", b"0|b", b"0|c"):
        table[key] = key.upper()
    (chunk, _), = table.changes()[0]
    table.pop(b"0|a")  # taken while the chunk is written
    table[b"0|b"] = b"again"  # set again: in the next chunk
    table.settle()
    (second, raw), = checkpoint(table)[0]
    assert msgspec.msgpack.decode(raw) == [[b"0|b", b"again"]]
    table.pop(b"0|c")  # the last key of the first chunk
    assert checkpoint(table) == {0: [(chunk, None)]}
    table.pop(b"0|b")
    assert checkpoint(table) == {0: [(second, None)]}


def test_a_chunk_whose_keys_all_left_while_it_was_written_is_tombstoned_next() -> None:
    table = ChunkedTable("pending")
    table.active = 0
    table[b"0|a"] = b"A"
    (chunk, _), = table.changes()[0]
    table.pop(b"0|a")
    table.settle()
    assert checkpoint(table) == {0: [(chunk, None)]}
    assert checkpoint(table) == {} and dict(table) == {}


def test_waiting_keys_of_a_checkpoint_that_failed_go_with_the_next_unless_taken() -> None:
    table = ChunkedTable("pending")
    table.active = 0
    table[b"0|a"] = b"A"
    table[b"0|b"] = b"B"
    table.changes()
    table.pop(b"0|a")
    table[b"0|c"] = b"C"
    table.abort()
    (_, raw), = checkpoint(table)[0]
    assert msgspec.msgpack.decode(raw) == [[b"0|b", b"B"], [b"0|c", b"C"]]


def test_a_value_index_kept_as_objects_reads_back_from_its_changelog_as_the_worker_holds_it() -> None:
    """Value heads are changed in place and written back as the same objects: each change must still reach the
    changelog, so that a worker restored from it holds the index the one before it ran on."""
    key, t0 = "phone:+8617000001111", 1_764_547_200_000
    table = PartitionedTable("values", encode_stored)
    table.active = 0
    processor = Processor(identity={}, persons={}, values=table, index_policy=IndexPolicy(),
                          state_policy=StatePolicy())
    messages = [ValueMessage(value_key=key, contact=Contact(value_key=key, person=f"p{i % 7}",
                                                            ts=t0 + i * HOUR_MS // 2, event_id=f"e{i}"))
                for i in range(60)]
    messages.insert(30, ValueMessage(value_key=key, indicator=Indicator(
        type="phone", value=key.split(":", 1)[1], action="add", fraud_type="romance", confidence=0.9,
        source="case-1", ts=t0 + 15 * HOUR_MS)))
    changelog: list[tuple[bytes, bytes | None]] = []
    for i, message in enumerate(messages):
        processor.value_message(message)
        if i % 4 == 3:
            changelog += checkpoint(table).get(0, [])
    changelog += checkpoint(table).get(0, [])
    restored = PartitionedTable("values", encode_stored)
    restored.load(0, changelog)
    assert ({k: encode_stored(v) for k, v in restored.items()}
            == {k: encode_stored(v) for k, v in table.items()})


def test_the_active_partitions_keys_are_those_it_owns_and_still_holds() -> None:
    table = PartitionedTable("values")
    table.load(1, [(b"phone:1", b"h"), (b"phone:1\x1fS1", b"e")])
    table.load(2, [(b"phone:2\x1fS1", b"e")])
    table.active = 1
    table[b"domain:x\x1fS1"] = b"e"
    del table[b"phone:1"]
    assert sorted(table.active_keys()) == [b"domain:x\x1fS1", b"phone:1\x1fS1"]
    table.active = 2
    assert table.active_keys() == [b"phone:2\x1fS1"]
