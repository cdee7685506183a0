"""A model and a tier policy judged against a recorded city's ground truth, beside the naive baseline.

`run_policy` replays the recorded moments through the model's score and `assign_tier` (what the live decider
does, moment by moment); `figures` measures what came out against the truth:

- victims warned before their first loss (any tier), at least 10 minutes before, and at T1/T2;
- T1/T2 precision: of the people ever at T1 or T2, the share who were being defrauded then;
- ordinary residents warned per 10k per day: residents neither defrauded nor contacted by a ring, warned at any
  tier (a shop's account the pipeline keys an unregistered payee by is no resident);
- stop-payment requests, the share on ordinary transfers, and those on large legitimate ones;
- lead time before the first loss (median and 10th percentile), the fraud type right for warned victims;
- warnings through a retracted indicator: ordinary people warned at or after an indicator's retraction while
  it was one of the case elements behind their hits.

The naive baseline warns on any contact with a known indicator (every hit, at its time).
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.units import DAY_MS, HOUR_MS, MINUTE_MS
from scorers.lab.recording import Recording
from scorers.model import Model
from scorers.tiers import TierPolicy, assign_tier

TIERS = ("T1", "T2", "T3")
EARLY_MS = 10 * MINUTE_MS


@dataclass
class Verdicts:
    """What a policy decided over a recording: rises (person → [(ts, tier, row)]) and stop-payments."""

    warnings: dict[str, list[tuple[int, str, int]]] = field(default_factory=lambda: defaultdict(list))
    stops: list[tuple[str, int, str, int]] = field(default_factory=list)  # (person, ts, transfer id, amount)


def scores(rec: Recording, model: Model) -> np.ndarray:
    """The risk score of every recorded moment (the exported weights, as live)."""
    fast = model.fast()
    if not rec.x:
        return np.zeros(0)
    z = rec.matrix() @ np.asarray(fast.weights) + fast.bias
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def run_policy(rec: Recording, score: np.ndarray, policy: TierPolicy) -> Verdicts:
    """Every rise and stop-payment the policy takes on the recorded moments, person by person in order.

    A moment with a score below T3, no strong hit and no transfer justifies no tier and leaves the person's
    state as it was (`assign_tier`), so only the others are run.
    """
    out = Verdicts()
    ev = rec.evidence_array()
    relevant = (score >= policy.t3_score) | (ev[:, 3] > 0) | (ev[:, 0] > 0)
    for p, rows in rec.rows_by_person().items():
        person, risk = rec.persons[p], None
        for row in rows[relevant[rows]].tolist():
            transfer = rec.transfer[row]
            d = assign_tier(float(score[row]), rec.evidence_of(row), risk, rec.now[row], policy,
                            rec.episode_start[row], transfer[0] if transfer is not None else None)
            risk = d.risk
            if d.rose and d.tier:
                out.warnings[person].append((rec.now[row], d.tier, row))
            if d.stop_payment and transfer is not None:
                tid, amount = transfer
                out.stops.append((person, rec.now[row], tid, amount))
    return out


def baseline_verdicts(rec: Recording) -> Verdicts:
    """The naive baseline: a warning at every contact with a known indicator (as T3)."""
    out = Verdicts()
    for person, times in rec.baseline.items():
        out.warnings[person] = [(ts, "T3", -1) for ts in sorted(times)]
    return out


def _first(warnings: dict[str, list[tuple[int, str, int]]], keys: list[str], lo: int, hi: int,
           tiers: tuple[str, ...] = TIERS) -> int | None:
    times = [ts for k in keys for ts, tier, _ in warnings.get(k, ()) if lo <= ts < hi and tier in tiers]
    return min(times) if times else None


def _rate(n: int, rec: Recording) -> float:
    return round(n / rec.residents * 10_000 / rec.days, 3)


def _share(a: int, n: int) -> float | None:
    return round(a / n, 4) if n else None


def figures(rec: Recording, v: Verdicts, types: list[str] | None = None) -> dict[str, Any]:
    """The figures of one system (a policy's verdicts, or the baseline's) on one recording."""
    engaged = [ep for ep in rec.truth if ep.engaged]
    lost = [ep for ep in engaged if ep.first_loss_ts is not None]
    before = early = before_t12 = 0
    leads: list[float] = []
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ep in lost:
        keys, loss = rec.keys_of[ep.episode_id], ep.first_loss_ts
        assert loss is not None
        first = _first(v.warnings, keys, ep.start_ts, loss)
        per_type[ep.fraud_type][1] += 1
        if first is not None:
            before += 1
            early += loss - first >= EARLY_MS
            per_type[ep.fraud_type][0] += 1
            leads.append((loss - first) / MINUTE_MS)
        before_t12 += _first(v.warnings, keys, ep.start_ts, loss, ("T1", "T2")) is not None
    # when each person was being defrauded (a day's margin either side)
    victim_windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ep in engaged:
        end = (ep.first_loss_ts or ep.start_ts + 6 * DAY_MS) + DAY_MS
        for k in rec.keys_of[ep.episode_id]:
            victim_windows[k].append((ep.start_ts - DAY_MS, end))
    contacted = {k for ep in rec.truth for k in rec.keys_of[ep.episode_id]}
    at_t12 = {p for p, ws in v.warnings.items() if any(t in ("T1", "T2") for _, t, _ in ws)}
    t12_true = {p for p in at_t12 if any(lo <= ts <= hi for ts, t, _ in v.warnings[p] if t in ("T1", "T2")
                                         for lo, hi in victim_windows.get(p, ()))}
    ordinary = {p for p, ws in v.warnings.items() if ws and p not in contacted
                and (not rec.resident_keys or p in rec.resident_keys)}
    fraud_tx = rec.fraud_transfers
    requests = {tid: (p, ts, amount) for p, ts, tid, amount in v.stops}
    on_ordinary = [tid for tid in requests if tid not in fraud_tx]
    return {
        "victims_with_loss": len(lost),
        "recall_before_loss": _share(before, len(lost)),
        "recall_10min_before_loss": _share(early, len(lost)),
        "recall_before_loss_t1_t2": _share(before_t12, len(lost)),
        "t1_t2_people": len(at_t12),
        "t1_t2_precision": _share(len(t12_true), len(at_t12)),
        "ordinary_warned": len(ordinary),
        "ordinary_warned_per_10k_per_day": _rate(len(ordinary), rec),
        "stop_payment_requests": len(requests),
        "stop_payments_on_ordinary_transfers": len(on_ordinary),
        "stop_payments_on_ordinary_share": _share(len(on_ordinary), len(requests)),
        "stop_payments_on_large_legit": sum(1 for tid in requests if tid in rec.large_legit),
        "stop_payment_before_loss": _share(sum(1 for ep in lost if any(
            tid in requests and requests[tid][1] < (ep.first_loss_ts or 0) for tid in ep.transfer_ids)), len(lost)),
        "median_lead_minutes": round(statistics.median(leads), 1) if leads else None,
        "p10_lead_minutes": round(float(np.percentile(leads, 10)), 1) if leads else None,
        "lead_minutes": sorted(round(x, 1) for x in leads),
        "warned_through_retracted": _through_retracted(rec, v, contacted),
        "per_fraud_type_recall_before_loss": {t: round(a / n, 3) for t, (a, n) in sorted(per_type.items())},
        "fraud_type_right": _type_right(rec, v, types) if types is not None else None,
        "warnings_by_tier": {t: sum(1 for ws in v.warnings.values() for _, tier, _ in ws if tier == t)
                             for t in TIERS},
    }


def _through_retracted(rec: Recording, v: Verdicts, contacted: set[str]) -> int:
    """Ordinary people warned at or after a retraction while the retracted element was behind their hits."""
    retracted = defaultdict(list)
    for r in rec.retractions:
        retracted[r.value_key].append(r.retract_ts)
    people = set()
    for p, ws in v.warnings.items():
        if p in contacted:
            continue
        for ts, _, row in ws:
            if row >= 0 and any(ts >= when for key in rec.hit_keys[row] for when in retracted.get(key, ())):
                people.add(p)
    return len(people)


def _type_right(rec: Recording, v: Verdicts, types: list[str]) -> float | None:
    """For warned victims: the share whose first warning named their fraud type (`types`: one per row)."""
    truth = {k: ep.fraud_type for ep in rec.truth if ep.engaged for k in rec.keys_of[ep.episode_id]}
    judged = [types[ws[0][2]] == truth[p] for p, ws in v.warnings.items() if p in truth and ws and ws[0][2] >= 0]
    return _share(sum(judged), len(judged))


def fraud_types(rec: Recording, model: Model, rows: list[int]) -> list[str]:
    """The classifier's fraud type at the given rows (others left empty)."""
    out = [""] * len(rec.now)
    if rows:
        x = np.hstack([rec.matrix()[rows], np.asarray(rec.x_type, dtype=float)[rows]])
        for row, t in zip(rows, model.types.predict(x)):
            out[row] = str(t)
    return out


def evaluate(rec: Recording, model: Model, policy: TierPolicy) -> dict[str, Any]:
    """Model + tiers and the naive baseline on one recording, with the city it came from."""
    v = run_policy(rec, scores(rec, model), policy)
    first_rows = [ws[0][2] for ws in v.warnings.values()]
    truth = rec.truth
    return {
        "city": {**rec.config, "attempts": len(truth), "engaged": sum(ep.engaged for ep in truth)},
        "model": figures(rec, v, fraud_types(rec, model, first_rows)),
        "baseline_any_indicator_contact": figures(rec, baseline_verdicts(rec)),
    }


def badness(figs: dict[str, Any]) -> tuple:
    """Sort key putting the worst family first: lowest recall before loss, then most ordinary people warned."""
    m = figs["model"]
    recall = m["recall_before_loss"] if m["recall_before_loss"] is not None else math.inf
    return (recall, -m["ordinary_warned_per_10k_per_day"], -(m["stop_payments_on_ordinary_share"] or 0))


WORST = {  # figure → whether a higher value is better (the worst held-out case is the other end)
    "recall_before_loss": True, "recall_10min_before_loss": True, "recall_before_loss_t1_t2": True,
    "t1_t2_precision": True, "ordinary_warned_per_10k_per_day": False, "stop_payments_on_ordinary_share": False,
    "stop_payments_on_large_legit": False, "median_lead_minutes": True, "warned_through_retracted": False,
}


def worst_case(per_family: dict[str, dict[str, Any]], min_victims: int = 8) -> dict[str, dict[str, Any]]:
    """Per figure, the worst value over the families and which family it was (recall-like figures only over
    families with at least `min_victims` victims with a loss), for the model and the baseline."""
    out: dict[str, dict[str, Any]] = {}
    for system in ("model", "baseline_any_indicator_contact"):
        for name, higher_better in WORST.items():
            victims_needed = name not in ("ordinary_warned_per_10k_per_day", "stop_payments_on_ordinary_share",
                                          "stop_payments_on_large_legit", "warned_through_retracted")
            cands = [(f[system][name], fam) for fam, f in per_family.items() if f[system].get(name) is not None
                     and (not victims_needed or f[system]["victims_with_loss"] >= min_victims)]
            if not cands:
                continue
            value, fam = (min if higher_better else max)(cands, key=lambda c: c[0])
            out.setdefault(system, {})[name] = {"value": value, "family": fam}
    return out


def pr_points(score: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Precision-recall and calibration points of the per-moment scores (for the report's plots)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(labels, score)
    frac, mean = calibration_curve(labels, score, n_bins=10, strategy="quantile")
    step = max(1, len(precision) // 200)
    return {"precision": precision[::step].round(4).tolist(), "recall": recall[::step].round(4).tolist(),
            "calibration_observed": frac.round(4).tolist(), "calibration_predicted": mean.round(4).tolist()}


def labels(rec: Recording) -> np.ndarray:
    """Per row: 1 when the person was being defrauded at that moment (from first contact to 2 h after the loss)."""
    windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ep in rec.truth:
        if ep.engaged:
            end = (ep.first_loss_ts or ep.start_ts + 6 * DAY_MS) + 2 * HOUR_MS
            for k in rec.keys_of[ep.episode_id]:
                windows[k].append((ep.start_ts, end))
    return np.asarray([int(any(s <= t <= e for s, e in windows.get(rec.persons[p], ())))
                       for p, t in zip(rec.person, rec.now)])
