"""Checkpoint offsets committed with the consumer's group generation (Kafka's KIP-447), so a worker the group
dropped cannot commit partitions another worker holds already.

aiokafka's `send_offsets_to_transaction` sends TxnOffsetCommit version 0, which carries no generation: the
broker takes the offsets of a member the group has dropped (its session expired while it was busy) as readily
as the current owner's, and the two mix their checkpoints. Version 3 carries the generation, the member id and
the static instance id; the broker refuses a stale one, and the transaction, with its changelog records, is
aborted. `fence(producer, member)` makes one transactional producer send version 3 with `member()`'s identity.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as Errors
from aiokafka.client import CoordinationType
from aiokafka.producer.sender import TxnOffsetCommitHandler
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactString, Int16, Int32, Int64, Schema, TaggedFields

Member = tuple[int, str, str | None]  # generation, member id, group instance id
# What the broker answers to a commit from a member that is not (or no longer) in the group's generation.
# (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID: aiokafka names no class
# for the last)
FENCED = {22: "illegal generation", 25: "unknown member id", 27: "rebalance in progress", 82: "fenced instance id"}


class TxnOffsetCommitResponse_v3(Response):
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partitions", CompactArray(("partition_index", Int32), ("error_code", Int16), ("tags", TaggedFields))),
            ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
        ("topics", CompactArray(
            ("name", CompactString("utf-8")),
            ("partitions", CompactArray(
                ("partition_index", Int32), ("committed_offset", Int64), ("committed_leader_epoch", Int32),
                ("committed_metadata", CompactString("utf-8")), ("tags", TaggedFields))),
            ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class FencedTxnOffsetCommitRequest(Request[TxnOffsetCommitRequest_v3]):
    """TxnOffsetCommit with the member's identity (version 3 only: an older broker cannot fence)."""

    API_KEY = 28

    def __init__(self, fields: tuple[Any, ...]) -> None:
        self._fields = fields

    def build(self, request_struct_class: type[TxnOffsetCommitRequest_v3]) -> TxnOffsetCommitRequest_v3:
        return request_struct_class(*self._fields)


class FencedCommitHandler(TxnOffsetCommitHandler):
    """aiokafka's handler with the member's identity in the request; a fenced answer aborts the transaction."""

    def __init__(self, sender: Any, offsets: Any, group_id: str, member: Member) -> None:
        super().__init__(sender, offsets, group_id)
        self._member = member

    def create_request(self) -> FencedTxnOffsetCommitRequest:
        txn = self._sender._txn_manager
        generation, member_id, instance_id = self._member
        by_topic: dict[str, list[tuple[int, int, int, str, dict]]] = collections.defaultdict(list)
        for tp, offset in sorted(self._offsets.items()):
            by_topic[tp.topic].append((tp.partition, offset.offset, -1, offset.metadata, {}))
        topics = [(topic, parts, {}) for topic, parts in by_topic.items()]
        return FencedTxnOffsetCommitRequest((txn.transactional_id, self._group_id, txn.producer_id,
                                             txn.producer_epoch, generation, member_id, instance_id, topics, {}))

    def handle_response(self, resp: Any) -> float | None:
        for _topic, partitions, _tags in resp.topics:
            for _partition, code, _tags in partitions:
                if code in FENCED:
                    _abort(self._sender._txn_manager, f"offsets refused for group {self._group_id}: {FENCED[code]}")
                    return None
        # the rest as aiokafka handles version 0's answer
        return super().handle_response(SimpleNamespace(errors=[
            (topic, [(partition, code) for partition, code, _ in partitions]) for topic, partitions, _ in resp.topics]))


def _abort(txn: Any, why: str) -> None:
    """Fail the transaction: its `send_offsets_to_transaction` raises `CommitFailedError`, and it can only be
    aborted. aiokafka's `error_transaction` forgets the partitions and group the transaction holds, and an abort of
    an empty-looking transaction sends nothing: they are put back so the abort reaches the broker (else the
    transaction stays open, and the next checkpoint would join it and commit its records)."""
    partitions, group = set(txn._txn_partitions), txn._txn_consumer_group
    txn.error_transaction(Errors.CommitFailedError(why))
    txn._txn_partitions |= partitions
    txn._txn_consumer_group = group
    txn._transaction_waiter.exception()  # read here: the caller hears it from send_offsets_to_transaction


def fence(producer: AIOKafkaProducer, member: Callable[[], Member]) -> None:
    """Make this transactional producer's offset commits carry `member()`'s generation and ids."""
    sender = producer._sender

    async def commit(offsets: Any, group_id: str) -> None:
        if not offsets:
            return
        # an exception out of here would stop aiokafka's sender for good: every failure aborts the transaction
        try:
            identity = member()
            if identity[0] < 0 or not identity[1]:  # the broker would take generation -1 as an unfenced commit
                _abort(sender._txn_manager, f"not a member of group {group_id}")
                return
            node_id = await sender._find_coordinator(CoordinationType.GROUP, group_id)
            await FencedCommitHandler(sender, offsets, group_id, identity).do(node_id)
        except Exception as exc:  # noqa: BLE001
            _abort(sender._txn_manager, f"offsets not committed for group {group_id}: {type(exc).__name__}: {exc}")

    sender._do_txn_offset_commit = commit

