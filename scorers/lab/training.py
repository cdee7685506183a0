"""`yujing train`: build the training data from a simulated city, fit, evaluate on held-out rows, save."""
from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from scorers.lab.city import CityConfig
from scorers.lab.dataset import build_dataset
from scorers.model import Model, load, risk_metrics, save, train

# The default training, validation and evaluation cities: small enough to train in a minute or two here.
TRAIN_CITY = CityConfig(residents=3000, days=6, seed=11, attempts_per_10k_per_day=80)
EVALUATION_CITY = CityConfig(residents=3000, days=6, seed=13, attempts_per_10k_per_day=80)
OUTCOME_WEIGHT = 10.0  # a label from the field counts like the ordinary moments one sampled row stands for


def model_dir(data_dir: Path) -> Path:
    """Where the worker finds its model: under the data folder."""
    return data_dir / "model"


def train_model(folder: Path, city: CityConfig = TRAIN_CITY, validation: CityConfig | None = None,
                outcome_rows: list[tuple[list[float], int]] | None = None, note: str = "") -> Model:
    """Train on `city` (plus rows labelled by field outcomes), measure on `validation`, save, load back."""
    t0 = time.monotonic()
    validation = validation or replace(city, seed=city.seed + 1)
    data, _ = build_dataset(city)
    X, y, w = data.arrays()
    if outcome_rows:
        X = np.vstack([X, np.asarray([r for r, _ in outcome_rows])])
        y = np.concatenate([y, np.asarray([label for _, label in outcome_rows])])
        w = np.concatenate([w, np.full(len(outcome_rows), OUTCOME_WEIGHT)])
    risk, types = train(X, y, w, np.asarray(data.X_type), np.asarray(data.fraud_type))
    held, _ = build_dataset(validation)
    Xv, yv, wv = held.arrays()
    pos = yv == 1
    type_acc = float((types.predict(np.asarray(held.X_type)[pos]) == np.asarray(held.fraud_type)[pos]).mean())
    meta = {
        "training_data": {"simulated_city": asdict(city), "rows": len(y), "positives": int(y.sum()),
                          "fingerprint": data.fingerprint(), "outcome_rows": len(outcome_rows or []),
                          "outcome_positives": sum(label for _, label in outcome_rows or []), "note": note},
        "evaluation": {"validation_city": asdict(validation), **risk_metrics(risk, Xv, yv, wv),
                       "fraud_type_accuracy": round(type_acc, 4)},
        "train_seconds": round(time.monotonic() - t0, 1),
    }
    save(folder, risk, types, meta)
    return load(folder)
