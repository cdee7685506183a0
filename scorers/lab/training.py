"""`yujing train`: fit the model on the training families, choose the thresholds on the tuning families, save both.

The artifact (scorers/model.py) names the families each step used, so `yujing evaluate` can refuse to report on
one of them; the tuned policy is written beside the model (`tiers.json`), with what it cost in its worst tuning
family.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from scorers.lab.dataset import dataset
from scorers.lab.evaluate import scores
from scorers.lab.protocol import TRAIN_SIZE, TRAINING, TUNE_SIZE, TUNING, Size, Step, quiet, recordings
from scorers.lab.tune import Budget, tune
from scorers.model import POLICY_FILE_NAME, Model, load, risk_metrics, save, train
from scorers.tiers import TierPolicy

OUTCOME_WEIGHT = 10.0  # a label from the field counts like the ordinary moments one sampled row stands for


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which families train and tune a model, at which city sizes, under which budget."""

    training: tuple[str, ...] = TRAINING
    tuning: tuple[str, ...] = TUNING
    train_size: Size = TRAIN_SIZE
    tune_size: Size = TUNE_SIZE
    budget: Budget = Budget()


DEFAULT_PLAN = Plan()


def model_dir(data_dir: Path) -> Path:
    """Where the worker finds its model: under the data folder."""
    return data_dir / "model"


def train_model(folder: Path, plan: Plan = DEFAULT_PLAN, outcome_rows: list[tuple[list[float], int]] | None = None,
                note: str = "", cache: Path | None = None, step: Step = quiet) -> Model:
    """Record the families, fit on the training ones (plus rows labelled by field outcomes), tune the thresholds
    on the tuning ones, save the artifact with its policy, and load it back."""
    t0 = time.monotonic()
    train_recs = recordings(plan.training, plan.train_size, cache, step=step)
    data = dataset(list(train_recs.values()))
    X, y, w = data.arrays()
    if outcome_rows:
        X = np.vstack([X, np.asarray([r for r, _ in outcome_rows])])
        y = np.concatenate([y, np.asarray([label for _, label in outcome_rows])])
        w = np.concatenate([w, np.full(len(outcome_rows), OUTCOME_WEIGHT)])
    risk, types = train(X, y, w, data.X_type, data.fraud_type)
    step("fitted")
    tune_recs = recordings(plan.tuning, plan.tune_size, cache, step=step)
    fitted = Model(risk, types, {"model_version": "candidate"})
    held = dataset(list(tune_recs.values()), seed=1)
    policy, worst = tune(tune_recs, {n: scores(r, fitted) for n, r in tune_recs.items()}, TierPolicy.load(),
                         plan.budget)
    step("tuned")
    pos = held.y == 1
    type_acc = float((types.predict(held.X_type[pos]) == held.fraud_type[pos]).mean()) if pos.any() else None
    meta = {
        "training_data": {"families": list(plan.training), "city_size": dataclasses.asdict(plan.train_size),
                          "rows": int(len(y)), "positives": int(y.sum()), "fingerprint": data.fingerprint(),
                          "outcome_rows": len(outcome_rows or []),
                          "outcome_positives": sum(label for _, label in outcome_rows or []), "note": note},
        "tuning": {"families": list(plan.tuning), "city_size": dataclasses.asdict(plan.tune_size),
                   "budget": dataclasses.asdict(plan.budget), "worst_case": worst},
        "evaluation": {"rows_of_tuning_families": {**risk_metrics(risk, held.X, held.y, held.weight),
                                                   "fraud_type_accuracy": round(type_acc, 4) if type_acc else None}},
        "train_seconds": round(time.monotonic() - t0, 1),
    }
    save(folder, risk, types, meta)
    doc = dataclasses.replace(policy, version=f"{policy.version}/tuned-{data.fingerprint()[:8]}").to_dict()
    doc["tuned"] = {"by": "scorers/lab/tune.py", "families": list(plan.tuning),
                    "budget": dataclasses.asdict(plan.budget), "worst_case": worst}
    (folder / POLICY_FILE_NAME).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return load(folder)
