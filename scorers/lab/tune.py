"""Choosing the tier thresholds: the policy whose worst tuning family stays within the budget and warns most.

Each candidate policy is run over every tuning family's recording (`assign_tier` per recorded moment, the live
decider's own rule), and judged by its worst family: it must warn at most `budget` ordinary residents per 10k per
day, keep T1/T2 precision at or above `min_precision`, put at most `max_ordinary_stops` of its stop-payment
requests on ordinary transfers and none on a large legitimate one. Among those, the one kept warns the most
victims before their first loss on average over the families (a tuning city has a few dozen victims: its worst
case alone is noise), then in its worst family, then the most at least ten minutes before, then the fewest
ordinary residents; ties go to the higher thresholds (fewer interventions).
"""
from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
from dataclasses import dataclass
from typing import Any

import numpy as np

from scorers.lab.evaluate import figures, run_policy
from scorers.lab.recording import Recording
from scorers.tiers import TierPolicy

GRID_T3 = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
GRID_T2 = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
GRID_T1 = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9)


@dataclass(frozen=True)
class Budget:
    """What a policy may cost in its worst tuning family."""

    ordinary_per_10k_per_day: float = 5.0
    min_precision: float = 0.5
    max_ordinary_stops: float = 0.05


def worst(per_family: list[dict[str, Any]]) -> dict[str, float]:
    """The worst value of each figure that matters over the families (None read as the worst)."""
    def low(name: str) -> float:  # families without a victim with a loss say nothing about recall
        return min((f[name] for f in per_family if f[name] is not None), default=0.0)

    def mean(name: str) -> float:
        values = [f[name] for f in per_family if f[name] is not None]
        return sum(values) / len(values) if values else 0.0

    def high(name: str) -> float:
        return max((f[name] or 0.0) for f in per_family)

    precision = [f["t1_t2_precision"] for f in per_family if f["t1_t2_precision"] is not None]
    return {"recall_before_loss": low("recall_before_loss"), "recall_10min": low("recall_10min_before_loss"),
            "mean_recall_before_loss": round(mean("recall_before_loss"), 4),
            "recall_t1_t2": low("recall_before_loss_t1_t2"), "ordinary": high("ordinary_warned_per_10k_per_day"),
            "precision": min(precision, default=1.0), "ordinary_stops": high("stop_payments_on_ordinary_share"),
            "large_legit": high("stop_payments_on_large_legit")}


def _judge(recs: dict[str, Recording], scores: dict[str, np.ndarray], base: TierPolicy, budget: Budget,
           grid: list[tuple[float, float, float]]) -> list[tuple[tuple, TierPolicy, dict[str, Any]]]:
    out = []
    for t3, t2, t1 in grid:
        policy = dataclasses.replace(base, t3_score=t3, t2_score=t2, t1_score=t1)
        w = worst([figures(rec, run_policy(rec, scores[name], policy)) for name, rec in recs.items()])
        over = overspend(w, budget)
        w["within_budget"] = not over
        # within the budget first; where nothing is, the least over it (the artifact says so)
        key = (-over, w["mean_recall_before_loss"], w["recall_before_loss"], w["recall_10min"], -w["ordinary"],
               t1, t2, t3)
        out.append((key, policy, w))
    return out


def tune(recs: dict[str, Recording], scores: dict[str, np.ndarray], base: TierPolicy,
         budget: Budget = Budget(), workers: int = 2) -> tuple[TierPolicy, dict[str, Any]]:
    """The best policy over the grid for these recordings (scores: each recording's per-row risk scores); the grid
    is shared out over `workers` forked processes (they read the recordings without copying them)."""
    grid = [(t3, t2, t1) for t3, t2, t1 in itertools.product(GRID_T3, GRID_T2, GRID_T1) if t3 <= t2]
    chunks = [grid[k::workers] for k in range(workers)]
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            judged = [r for part in pool.starmap(_judge, [(recs, scores, base, budget, c) for c in chunks]) for r in part]
    else:
        judged = _judge(recs, scores, base, budget, grid)
    _, policy, w = max(judged, key=lambda r: r[0])
    return policy, w


def overspend(w: dict[str, float], budget: Budget) -> float:
    """How far a worst case is over the budget, in units of each limit (0: within it)."""
    return (max(0.0, w["ordinary"] / budget.ordinary_per_10k_per_day - 1)
            + max(0.0, (budget.min_precision - w["precision"]) / budget.min_precision)
            + max(0.0, w["ordinary_stops"] - budget.max_ordinary_stops) * 10 + w["large_legit"])
