"""Task-feed rules: queues by grid and station, what a scope sees, priority order, which reports fit."""
from __future__ import annotations

import pytest

from dispatch.tasks import Report, Scope, check_report, priority, queue_of
from schemas.records import PhoneTask, VisitTask

BASE = {"warning_id": "w", "tier": "T2", "fraud_type": "romance", "ts": 0, "subject_id": "P1", "respond_by_ts": 5}


@pytest.mark.parametrize(("task", "queue"), [
    (VisitTask(**BASE, task_id="t", grid_id="G0012", station_id="ST003", name_masked="王*"), "visit:G0012"),
    (VisitTask(**BASE, task_id="t", grid_id="UNASSIGNED", station_id="ST003", name_masked="未登记"), "visit:@ST003"),
    (PhoneTask(**BASE, task_id="t", phone="+8613800000000", station_id="ST003", script="s"), "phone:ST003"),
])
def test_queue_of(task: PhoneTask | VisitTask, queue: str) -> None:
    assert queue_of(task) == queue


def test_a_grid_worker_sees_one_grid_and_a_station_its_calls_and_unassigned_visits() -> None:
    assert Scope("w", "grid", "G0012").queues() == ["visit:G0012"]
    assert Scope("w", "station", "ST003").queues() == ["phone:ST003", "visit:@ST003"]


def test_priority_is_tier_then_deadline() -> None:
    tasks = [{"task_id": "a", "tier": "T3", "respond_by_ts": 1}, {"task_id": "b", "tier": "T1", "respond_by_ts": 9},
             {"task_id": "c", "tier": "T1", "respond_by_ts": 2}, {"task_id": "d", "tier": "T2", "respond_by_ts": 0}]
    assert [t["task_id"] for t in sorted(tasks, key=priority)] == ["c", "b", "d", "a"]


@pytest.mark.parametrize(("queue", "report", "accepted"), [
    ("visit:G1", Report("visited"), True),
    ("visit:G1", Report("dissuaded", amount_saved_fen=100), True),
    ("visit:G1", Report("call_answered"), False),
    ("visit:G1", Report("sms_delivered"), False),
    ("phone:ST1", Report("call_refused"), True),
    ("phone:ST1", Report("visited"), False),
    ("phone:ST1", Report("false_alarm", note="x" * 1025), False),
    ("visit:@ST1", Report("already_lost", amount_saved_fen=-1), False),
])
def test_check_report(queue: str, report: Report, accepted: bool) -> None:
    assert (check_report(queue, report) is None) is accepted
