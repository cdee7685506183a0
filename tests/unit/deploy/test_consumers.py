"""Offsets are committed only once their effects are old enough for Redis's AOF to have them on disk."""
from __future__ import annotations

from aiokafka import TopicPartition

from deploy.consumers import LaggingCommits

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
