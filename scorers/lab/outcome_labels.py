"""Outcomes as labels: what the field reported back about a decision becomes a training row."""
from __future__ import annotations

from schemas.internal import Decision
from schemas.records import OUTCOME_LABELS as LABELS
from schemas.records import Outcome


def outcome_rows(decisions: list[Decision], outcomes: list[Outcome]) -> list[tuple[list[float], int]]:
    """(features, label) for every decision whose warning got a labelling outcome (the latest one wins)."""
    by_id = {d.decision_id: d for d in decisions if d.features}
    latest: dict[str, Outcome] = {}
    for o in outcomes:
        if o.outcome in LABELS and o.warning_id in by_id:
            if o.warning_id not in latest or o.ts >= latest[o.warning_id].ts:
                latest[o.warning_id] = o
    return [(by_id[wid].features, LABELS[o.outcome]) for wid, o in sorted(latest.items())]
