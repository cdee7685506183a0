"""The hot path's outbox (records for enveloped topics per destination partition, in order, the rest as they came),
the slices a fetched batch is processed in, and a provider's progress records among the signals."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from deploy.app.handlers import Handlers
from deploy.app.partitioned import PartitionedTable
from deploy.app.stream_reader import Outbox, StreamReader, partition_of, slices
from deploy.city_stream import progress_record
from ops.metrics import PipelineMetrics
from schemas.internal import EVERY_PARTITION, Output, PersonEvent, Trigger, ValueMessage
from streams.watermarks import Mark, SourceProgress


def test_keys_go_to_the_partition_kafkas_default_partitioner_gives_them() -> None:
    partitioner = DefaultPartitioner()
    for key in (b"S00001", b"phone:+8617000000001", b"account:6222", "身份".encode()):
        assert partition_of(key, 8) == partitioner(key, list(range(8)), list(range(8)))


def test_outputs_are_gathered_per_partition_in_order_with_their_origins() -> None:
    outbox = Outbox(partitions=4)
    a, b = PersonEvent(person="A", source="hit"), PersonEvent(person="B", source="hit")
    trigger = Trigger(trigger_id="t", person="A", subject_id=None, ts=1, cause="indicator_hit", mode="forward",
                      value_key="phone:+861", fraud_type="romance", event_id="e")
    outbox.add([Output("yujing.events", b"A", a), Output("yujing.triggers", b"A", trigger)], origin=1.0)
    outbox.add([Output("yujing.events", b"B", b, origin=0.5), Output("yujing.events", b"A", a)], origin=2.0)
    pa, pb = partition_of(b"A", 4), partition_of(b"B", 4)
    routed = outbox.routed
    if pa == pb:
        assert routed[("yujing.events", pa)] == ([a, b, a], [1.0, 0.5, 2.0])
    else:
        assert routed[("yujing.events", pa)] == ([a, a], [1.0, 2.0])
        assert routed[("yujing.events", pb)] == ([b], [0.5])  # a decision keeps its own origin
    assert outbox.direct == [(Output("yujing.triggers", b"A", trigger), 1.0)]


def test_an_output_to_every_partition_goes_once_to_each() -> None:
    outbox = Outbox(partitions=3)
    erased = ValueMessage(value_key="", erased="S1")
    outbox.add([Output("yujing.contacts", b"S1", erased, partition=EVERY_PARTITION)], origin=None)
    assert outbox.routed == {("yujing.contacts", p): ([erased], [None]) for p in range(3)}


def test_a_batch_is_sliced_by_bytes_keeping_every_record_once_and_in_order() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    rec = [SimpleNamespace(value=b"x" * n, offset=i) for i, n in enumerate((40, 40, 40, 250, 10))]
    batches = {a: rec[:3], b: rec[3:]}
    parts = list(slices(batches, 100))
    assert [[(tp.partition, [r.offset for r in rs]) for tp, rs in part] for part in parts] == [
        [(0, [0, 1])], [(0, [2])], [(1, [3])], [(1, [4])]]  # a record over the budget makes a slice alone
    assert list(slices(batches, 10_000)) == [[(a, rec[:3]), (b, rec[3:])]]
    assert list(slices({}, 100)) == []


def test_a_partitions_fetch_time_is_the_clients_in_seconds() -> None:
    consumer = SimpleNamespace(last_poll_timestamp=lambda tp: 1_764_547_200_250 if tp.partition == 0 else None)
    reader = SimpleNamespace(consumer=consumer)
    assert StreamReader._polled_at(reader, TopicPartition("t", 0)) == 1_764_547_200.25  # type: ignore[arg-type]
    assert StreamReader._polled_at(reader, TopicPartition("t", 1)) is None  # type: ignore[arg-type]


def test_a_checkpoint_that_fails_while_taking_its_changes_gives_them_all_back() -> None:
    def encode(value: bytes) -> bytes:
        if value == b"bad":
            raise ValueError("cannot encode")
        return value

    first, second = PartitionedTable("persons", encode), PartitionedTable("values", encode)
    for p in (0, 1):
        first.active = second.active = p
        first[b"%d" % p] = b"ok"
        second[b"%d" % p] = b"bad" if p == 1 else b"ok"

    async def nothing() -> None:
        return None

    reader = SimpleNamespace(tables={"persons": first, "values": second}, _written=nothing, _rewind_due=False,
                             position={}, held=set(), committed={}, _turn_at=0.0, _turn=nothing)
    with pytest.raises(ValueError):
        asyncio.run(StreamReader.begin_checkpoint(reader))  # type: ignore[arg-type]
    second[b"1"] = b"ok"  # (written in partition 1, the last one active)
    assert first.changes() == {0: [(b"0", b"ok")], 1: [(b"1", b"ok")]}
    assert second.changes() == {0: [(b"0", b"ok")], 1: [(b"1", b"ok")]}


def test_a_providers_word_moves_its_partition_is_no_signal_and_a_bad_one_is_dead_lettered() -> None:
    ts = 1_764_547_200_000
    progress = SourceProgress(producers={"signals.telecom": ["gw1"]}, clock=lambda: 0.0)
    handlers = Handlers(SimpleNamespace(lookup=lambda _: None), None, progress,  # type: ignore[arg-type]
                        PipelineMetrics(CollectorRegistry()))
    reader = SimpleNamespace(handlers=handlers, metrics=handlers.metrics, _turn_at=float("inf"))
    call = (b'{"event_id": "c1", "ts": %d, "kind": "call", "direction": "in", "subscriber": "+8613800000001", '
            b'"counterpart": "+8617000001111", "duration_s": 30}' % ts)
    records = [SimpleNamespace(topic="signals.telecom", partition=0, offset=i, key=key, value=value, timestamp=ts)
               for i, (key, value) in enumerate([
                   progress_record("gw1", ts + 1_000),
                   (b"+8613800000001", call),
                   (b"progress:gw1", b'{"producer": "gw1", "progress_ts": "soon"}'),
               ])]
    outbox = Outbox(partitions=4)
    asyncio.run(StreamReader._sources(reader, "signals.telecom", TopicPartition("t", 0), records,  # type: ignore[arg-type]
                                      outbox))
    assert progress.mark("signals.telecom/0", highwater=3) == Mark("signals.telecom/0", ts + 1_000)
    assert [out.topic for out, _ in outbox.direct] == ["deadletter"]  # the bad word, with its reason
    assert outbox.direct[0][0].value.field == "progress_ts"
    assert sum(len(events) for events, _ in outbox.routed.values()) == 1  # the call's person event
    counts = handlers.metrics.registry.get_sample_value
    assert counts("yujing_events_in_total", {"topic": "signals.telecom"}) == 1
    assert counts("yujing_progress_records_total", {"topic": "signals.telecom", "counted": "yes"}) == 1
