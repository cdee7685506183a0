"""Task-feed rules (pure): which queue a task belongs to, who may see it, its priority, which outcomes fit it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from schemas.catalogue import tr
from schemas.records import TIER_RANK, PhoneTask, VisitTask

Kind = Literal["visit", "phone"]
# What a visit or a call can end in (the contract's outcome values that fit each channel).
OUTCOMES: dict[str, frozenset[str]] = {
    "visit": frozenset({"visited", "dissuaded", "already_lost", "unreachable", "false_alarm"}),
    "phone": frozenset({"call_answered", "call_refused", "unreachable", "dissuaded", "already_lost", "false_alarm"}),
}
UNASSIGNED_GRID = "UNASSIGNED"


@dataclass(frozen=True)
class Scope:
    """What a feed user may see: a grid's visits (a grid worker) or a station's calls and unassigned visits."""

    worker: str
    kind: Literal["grid", "station"]
    unit: str  # the grid or station id

    def __post_init__(self) -> None:
        if not self.worker or not self.unit or self.unit.startswith("@"):
            raise ValueError("a feed user needs a name and a grid or station id not starting with @ (the reserved "
                             "prefix of a station's visits without a grid)")

    def queues(self) -> list[str]:
        """The queues this user works on."""
        if self.kind == "grid":
            return [f"visit:{self.unit}"]
        return [f"phone:{self.unit}", f"visit:@{self.unit}"]


def queue_of(task: PhoneTask | VisitTask) -> str:
    """The queue a task waits in: a grid's visits, a station's calls, or a station's visits with no grid."""
    if isinstance(task, PhoneTask):
        return f"phone:{task.station_id}"
    if task.grid_id == UNASSIGNED_GRID:  # an unregistered person: the station looks for them
        return f"visit:@{task.station_id}"
    return f"visit:{task.grid_id}"


def channel_of(queue: str) -> Kind:
    """The channel of a queue's tasks."""
    return "phone" if queue.startswith("phone:") else "visit"


def priority(task: dict) -> tuple[int, int, str]:
    """Sort key of the open tasks: the highest tier first, then the earliest deadline."""
    return -TIER_RANK.get(task.get("tier"), 0), int(task.get("respond_by_ts", 0)), str(task.get("task_id"))


class Report(msgspec.Struct, forbid_unknown_fields=True):
    """What a grid worker or caller reports about a task."""

    outcome: str
    note: str | None = msgspec.field(default=None)
    amount_saved_fen: int | None = None


def check_report(queue: str, report: Report) -> str | None:
    """Why a report cannot be accepted for a task of this queue, in the operators' words (None when it can)."""
    channel = channel_of(queue)
    if report.outcome not in OUTCOMES[channel]:
        return tr("outcome must be one of {allowed} for a {channel} task", allowed=", ".join(sorted(OUTCOMES[channel])),
                  channel=channel)
    if report.note is not None and len(report.note) > 1024:
        return tr("note is longer than 1024 characters")
    if report.amount_saved_fen is not None and not 0 <= report.amount_saved_fen <= 10**13:
        return tr("amount_saved_fen must be between 0 and 10^13")
    return None
