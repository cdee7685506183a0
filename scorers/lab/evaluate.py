"""Evaluation on a held-out simulated city: the model and tiers against ground truth, beside a naive baseline.

The city is replayed through the pipeline's own logic with the real decision hook. The naive baseline warns
on any contact with a known case element (every indicator hit), from the same replay. Figures:
victim recall before the first loss, recall at T1/T2, T1/T2 precision, stop-payments requested before the
loss completed, benign residents warned per 10k per day, median lead time before loss, per fraud type.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.internal import Decision, Output, PersonEvent, Trigger
from schemas.units import DAY_MS
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.features import Snapshot, features
from scorers.lab.city import City, CityConfig, EpisodeTruth
from scorers.lab.dataset import episode_keys, feed_city, keys_of_episodes, victim_windows
from scorers.model import Model
from scorers.tiers import TierPolicy
from streams.local import LocalPipeline
from streams.person_state import PersonState, Update, as_of, event_time


@dataclass
class Replay:
    """What one replay of a city produced: decisions, indicator triggers, and per-moment scores with labels."""

    city: City
    decisions: list[Decision]
    triggers: list[Trigger]
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    keys_of: dict[str, list[str]] = field(default_factory=dict)  # episode id → person keys


def replay(model: Model, policy: TierPolicy, cfg: CityConfig) -> Replay:
    """Run the held-out city through the pipeline with the model deciding."""
    city = City(cfg)
    pipeline = LocalPipeline()
    ages = Ages(pipeline.processor.lookup)
    decider = Decider(model, policy, ages)
    scores: list[float] = []
    labels: list[int] = []
    windows: dict[str, list] = {}

    def hook(state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        if update.noted:
            now = event_time(pe)
            scores.append(decider.fast.score(features(Snapshot(as_of(state, now), now, ages(state.subject_id)))))
            labels.append(int(any(s <= now <= e for s, e, _ in windows.get(state.person, ()))))
        return decider(state, pe, update)

    def on_plan(truth: list[EpisodeTruth]) -> None:
        windows.update(victim_windows(truth, lambda ep: episode_keys(ep, pipeline.processor.lookup)))

    pipeline.processor.on_person = hook
    feed_city(city, pipeline, on_plan)
    keys_of = keys_of_episodes(city.truth, pipeline.processor.lookup)
    decisions = [o.value for o in pipeline.sent["yujing.decisions"]]  # type: ignore[misc]
    triggers = [o.value for o in pipeline.sent["yujing.triggers"]]  # type: ignore[misc]
    return Replay(city, decisions, triggers, scores, labels, keys_of)  # type: ignore[arg-type]


def _first(warnings: dict[str, list[tuple[int, str]]], keys: list[str], lo: int, hi: int,
           tiers: tuple[str, ...]) -> int | None:
    times = [ts for k in keys for ts, tier in warnings.get(k, ()) if lo <= ts < hi and tier in tiers]
    return min(times) if times else None


def _system_figures(warnings: dict[str, list[tuple[int, str]]], stops: dict[str, list[int]], r: Replay,
                    tiers_all: tuple[str, ...]) -> dict[str, Any]:
    cfg = r.city.cfg
    engaged = [ep for ep in r.city.truth if ep.engaged]
    lost = [ep for ep in engaged if ep.first_loss_ts is not None]
    in_episode = {k for ep in r.city.truth for k in r.keys_of.get(ep.episode_id, [])}
    before, before_t12, stopped, leads = 0, 0, 0, []
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ep in lost:
        keys = r.keys_of[ep.episode_id]
        assert ep.first_loss_ts is not None
        first = _first(warnings, keys, ep.start_ts, ep.first_loss_ts, tiers_all)
        per_type[ep.fraud_type][1] += 1
        if first is not None:
            before += 1
            per_type[ep.fraud_type][0] += 1
            leads.append((ep.first_loss_ts - first) / 60_000)
        before_t12 += _first(warnings, keys, ep.start_ts, ep.first_loss_ts, ("T1", "T2")) is not None
        stopped += any(ep.start_ts <= ts <= ep.first_loss_ts for k in keys for ts in stops.get(k, ()))
    reached_t12 = sum(1 for ep in engaged if _first(warnings, r.keys_of[ep.episode_id], ep.start_ts,
                                                    (ep.first_loss_ts or ep.start_ts + 6 * DAY_MS) + DAY_MS,
                                                    ("T1", "T2")) is not None)
    windows = victim_windows(engaged, lambda ep: r.keys_of[ep.episode_id])
    t12 = [(k, ts) for k, ws in warnings.items() for ts, tier in ws if tier in ("T1", "T2")]
    t12_true = sum(1 for k, ts in t12 if any(s - DAY_MS <= ts <= e + DAY_MS for s, e, _ in windows.get(k, ())))
    benign = {k for k, ws in warnings.items() if ws and k not in in_episode}
    return {
        "victims_with_loss": len(lost),
        "recall_before_loss": round(before / len(lost), 4) if lost else None,
        "recall_before_loss_t1_t2": round(before_t12 / len(lost), 4) if lost else None,
        "stop_payment_before_loss": round(stopped / len(lost), 4) if lost else None,
        "recall_t1_t2_engaged": round(reached_t12 / len(engaged), 4) if engaged else None,
        "t1_t2_warnings": len(t12),
        "t1_t2_precision": round(t12_true / len(t12), 4) if t12 else None,
        "benign_warned": len(benign),
        "benign_warned_per_10k_per_day": round(len(benign) / cfg.residents * 10_000 / cfg.days, 3),
        "median_lead_minutes": round(statistics.median(leads), 1) if leads else None,
        "lead_minutes": sorted(round(x, 1) for x in leads),
        "per_fraud_type_recall_before_loss": {t: round(a / n, 3) for t, (a, n) in sorted(per_type.items())},
    }


def figures(r: Replay) -> dict[str, Any]:
    """Model and baseline figures for one replay."""
    model_warn: dict[str, list[tuple[int, str]]] = defaultdict(list)
    stops: dict[str, list[int]] = defaultdict(list)
    for d in r.decisions:
        if d.rose:
            model_warn[d.person].append((d.ts, d.tier))
        if d.transfer is not None:
            stops[d.person].append(d.ts)
    base_warn: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for t in r.triggers:
        if t.cause == "indicator_hit" and t.mode != "fanout":
            base_warn[t.person].append((t.ts, "T3"))
    engaged = [ep for ep in r.city.truth if ep.engaged]
    return {
        "city": {"residents": r.city.cfg.residents, "days": r.city.cfg.days, "seed": r.city.cfg.seed,
                 "attempts": len(r.city.truth), "engaged": len(engaged),
                 "attempts_per_10k_per_day": r.city.cfg.attempts_per_10k_per_day},
        "model": _system_figures(model_warn, stops, r, ("T1", "T2", "T3")),
        "baseline_any_indicator_contact": _system_figures(base_warn, {}, r, ("T3",)),
        "decisions": {"warnings": sum(1 for d in r.decisions if d.rose),
                      "by_tier": {t: sum(1 for d in r.decisions if d.rose and d.tier == t) for t in ("T1", "T2", "T3")},
                      "stop_payments": sum(1 for d in r.decisions if d.transfer is not None)},
        "type_accuracy_on_victims": _type_accuracy(r),
    }


def _type_accuracy(r: Replay) -> float | None:
    truth_type = {k: ep.fraud_type for ep in r.city.truth if ep.engaged for k in r.keys_of[ep.episode_id]}
    judged = [(d.fraud_type, truth_type[d.person]) for d in r.decisions if d.rose and d.person in truth_type]
    return round(sum(a == b for a, b in judged) / len(judged), 4) if judged else None


def pr_points(scores: list[float], labels: list[int]) -> dict[str, list[float]]:
    """Precision-recall and calibration points of the per-moment scores (for the report's plots)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    y, p = np.asarray(labels), np.asarray(scores)
    precision, recall, _ = precision_recall_curve(y, p)
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
    step = max(1, len(precision) // 200)
    return {"precision": precision[::step].round(4).tolist(), "recall": recall[::step].round(4).tolist(),
            "calibration_observed": frac.round(4).tolist(), "calibration_predicted": mean.round(4).tolist()}
