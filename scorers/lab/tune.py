"""Choosing the tier thresholds on a validation city: replay once, then re-run the tiers for a grid of policies.

    .venv/bin/python -m scorers.lab.tune --model DATA/model --budget 10

Each noted moment's score and evidence is recorded in one replay; `assign_tier` (stateful: hysteresis) is then
re-run per person for every candidate policy, which costs milliseconds instead of a replay each. The policy
kept maximises victims warned before their first loss with T1/T2 (the tiers that reach a person in time), then
before loss at any tier, among those warning at most `budget` benign residents per 10k per day with T1/T2
precision of at least `min_precision` (a stop-payment request costs a bank and a customer); ties go to the
higher thresholds (fewer interventions).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from collections import defaultdict
from pathlib import Path

from schemas.internal import Output, PersonEvent
from scorers.ages import Ages
from scorers.decide import moment_evidence
from scorers.features import Snapshot, features
from scorers.lab.city import City, CityConfig
from scorers.lab.dataset import feed_city, keys_of_episodes
from scorers.lab.evaluate import Replay, _system_figures
from scorers.model import Model, load
from scorers.tiers import POLICY_FILE, Evidence, TierPolicy, assign_tier
from streams.local import LocalPipeline
from streams.person_state import PersonState, Update, as_of, event_time

Moment = tuple[int, float, Evidence]


def record(model: Model, cfg: CityConfig, window_ms: int) -> tuple[dict[str, list[Moment]], Replay]:
    """Every noted moment's (time, score, evidence), per person, from one replay of the city."""
    city = City(cfg)
    pipeline = LocalPipeline()
    ages = Ages(pipeline.processor.lookup)
    fast = model.fast()
    moments: dict[str, list[Moment]] = defaultdict(list)

    def hook(state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        if update.noted:
            now = event_time(pe)
            x = features(Snapshot(as_of(state, now), now, ages(state.subject_id)))
            ev, _, _ = moment_evidence(as_of(state, now), pe, now, x, window_ms)
            moments[state.person].append((now, fast.score(x), ev))
        return []

    pipeline.processor.on_person = hook
    feed_city(city, pipeline, lambda truth: None)
    return moments, Replay(city, [], [], keys_of=keys_of_episodes(city.truth, pipeline.processor.lookup))


def run_policy(moments: dict[str, list[Moment]], policy: TierPolicy) -> tuple[dict, dict]:
    """The warnings and stop-payments a policy gives for the recorded moments."""
    warnings: dict[str, list[tuple[int, str]]] = defaultdict(list)
    stops: dict[str, list[int]] = defaultdict(list)
    for person, seq in moments.items():
        risk = None
        for now, score, ev in seq:
            d = assign_tier(score, ev, risk, now, policy)
            risk = d.risk
            if d.rose and d.tier:
                warnings[person].append((now, d.tier))
            if d.stop_payment:
                stops[person].append(now)
    return warnings, stops


def tune(model: Model, cfg: CityConfig, budget: float, base: TierPolicy,
         min_precision: float = 0.85) -> tuple[TierPolicy, dict]:
    """The best policy on the city under the benign-warning budget, and its figures."""
    moments, r = record(model, cfg, base.t1_transfer_window_ms)
    best: tuple[tuple, TierPolicy, dict] | None = None
    grid = itertools.product([0.05, 0.1, 0.15, 0.2, 0.3, 0.5], [0.2, 0.3, 0.5, 0.7, 0.9], [0.05, 0.1, 0.2, 0.3, 0.5])
    for t3, t2, t1 in grid:
        if t3 > t2:
            continue
        policy = dataclasses.replace(base, t3_score=t3, t2_score=t2, t1_score=t1)
        warnings, stops = run_policy(moments, policy)
        figs = _system_figures(warnings, stops, r, ("T1", "T2", "T3"))
        if figs["benign_warned_per_10k_per_day"] > budget or (figs["t1_t2_precision"] or 0) < min_precision:
            continue
        key = (figs["recall_before_loss_t1_t2"], figs["recall_before_loss"], -figs["benign_warned_per_10k_per_day"],
               t1, t2, t3)
        if best is None or key > best[0]:
            best = (key, policy, figs)
    if best is None:
        raise SystemExit(f"no policy in the grid stays within {budget} benign warnings per 10k per day "
                         f"at T1/T2 precision >= {min_precision}")
    return best[1], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--budget", type=float, default=18.0, help="benign residents warned per 10k per day")
    parser.add_argument("--min-precision", type=float, default=0.85, help="T1/T2 precision at least")
    parser.add_argument("--write", action="store_true", help="write the chosen thresholds into the policy file")
    args = parser.parse_args()
    from scorers.lab.training import TRAIN_CITY

    validation = dataclasses.replace(TRAIN_CITY, seed=TRAIN_CITY.seed + 1)
    policy, figs = tune(load(Path(args.model)), validation, args.budget, TierPolicy.load(), args.min_precision)
    print(json.dumps({"t3": policy.t3_score, "t2": policy.t2_score, "t1": policy.t1_score,
                      **{k: v for k, v in figs.items() if k != "lead_minutes"}}, indent=2))
    if args.write:
        doc = json.loads(POLICY_FILE.read_text())
        doc["t3"]["score"], doc["t2"]["score"], doc["t1"]["score"] = policy.t3_score, policy.t2_score, policy.t1_score
        POLICY_FILE.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
