"""Offsets are committed only once their effects are old enough for Redis's AOF to have them on disk; an outage of
Redis or the broker is waited out and reading starts again from the committed offsets, any other error is not."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import kafka.errors
import pytest
import redis.exceptions as redis_errors
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)

from deploy.consumers import LaggingCommits, after_outage, is_outage

A, B = TopicPartition("dispatch.sms", 0), TopicPartition("dispatch.sms", 1)


def test_an_offset_is_due_once_the_lag_has_passed_and_only_the_latest_per_partition() -> None:
    now = [100.0]
    commits = LaggingCommits(lag_s=3.0, clock=lambda: now[0])
    commits.note(A, 10)
    now[0] = 101.0
    commits.note(A, 20)
    commits.note(B, 5)
    assert commits.due() == {}  # nothing is three seconds old yet
    now[0] = 103.0
    assert commits.due() == {A: 10}
    now[0] = 104.5
    assert commits.due() == {A: 20, B: 5}
    assert commits.due() == {}  # committed ones are forgotten


def test_what_was_noted_before_a_rewind_is_never_committed() -> None:
    now = [0.0]
    commits = LaggingCommits(lag_s=3.0, clock=lambda: now[0])
    commits.note(A, 50)
    commits.forget()  # the consumer went back to the committed offset: 50 will be read again
    now[0] = 10.0
    assert commits.due() == {} and commits.due(everything=True) == {}
    commits.note(B, 7)
    assert commits.due(everything=True) == {B: 7}


@pytest.mark.parametrize("exc, outage", [
    (redis_errors.ConnectionError("gone"), True),
    (UnknownTopicOrPartitionError(), True),  # a broker just restarted does not know its topics yet
    (KafkaConnectionError(), True),
    (KafkaTimeoutError(), True),
    # kafka-python's, from the readers run in a thread (the SMS adapter's journal when the broker is lost then)
    (kafka.errors.KafkaConnectionError("reset by peer"), True),
    (kafka.errors.NodeNotReadyError(), True),
    (kafka.errors.KafkaTimeoutError(), True),
    (kafka.errors.InvalidConfigurationError(), False),
    (RecordTooLargeError(), False),  # the broker answered: waiting changes nothing
    (ValueError("a bug"), False),
])
def test_an_outage_is_told_from_a_failure(exc: Exception, outage: bool) -> None:
    assert is_outage(exc) is outage


class Consumer:
    """A consumer whose broker does not say the committed offsets the first `away` times."""

    def __init__(self, away: int, error: Exception) -> None:
        self.away, self.error, self.seeks = away, error, []

    def assignment(self) -> set[TopicPartition]:
        return {A}

    async def committed(self, tp: TopicPartition) -> int:
        if self.away:
            self.away -= 1
            raise self.error
        return 7

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_after_an_outage_reading_starts_again_from_the_committed_offsets_once_the_broker_says_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    consumer: Any = Consumer(away=2, error=UnknownTopicOrPartitionError())
    delay = asyncio.run(after_outage(consumer, KafkaConnectionError(), 0.1, logging.getLogger("test")))
    assert consumer.seeks == [(A, 7)] and slept == [0.1, 0.2, 0.4] and delay == 0.8
    failing: Any = Consumer(away=1, error=RecordTooLargeError())
    with pytest.raises(RecordTooLargeError):
        asyncio.run(after_outage(failing, redis_errors.ConnectionError("gone"), 0.1, logging.getLogger("test")))
