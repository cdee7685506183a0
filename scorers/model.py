"""The risk model and the fraud-type classifier: training, the artifact with its metadata, and fast scoring.

The artifact is a folder: `model.joblib` (the scikit-learn estimators) and `model.json` (version, scikit-learn
version, feature names, training data, evaluation figures). Loading refuses an artifact made under another
scikit-learn version or for another feature list. Live scoring does not call `predict_proba` per event: the
risk model is a standardised logistic regression, exported to one weight vector (`FastRisk`), which gives the
same probabilities (checked at load) at a fraction of the cost; so is the fraud-type classifier (`FastTypes`).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from scorers.features import FEATURES
from scorers.fraud_types import TYPE_FEATURES
from scorers.monotone import NonNegativeLogisticRegression
from scorers.tiers import TierPolicy

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
POLICY_FILE_NAME = "tiers.json"  # the thresholds tuned for this model (scorers/lab/tune.py), beside it


class ModelMismatch(RuntimeError):
    """The artifact was made for another scikit-learn version or another feature list."""


def make_risk_estimator() -> Pipeline:
    """The risk model: standardised features into a logistic regression with non-negative weights."""
    return Pipeline([("scale", StandardScaler()), ("lr", NonNegativeLogisticRegression(C=1.0))])


def make_type_estimator() -> Pipeline:
    """The fraud-type classifier: a multinomial logistic regression on victim and hit features."""
    return Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(C=1.0, max_iter=3000))])


@dataclass
class FastRisk:
    """The risk model as one weight vector: sigmoid(w·x + b), equal to the pipeline's predict_proba."""

    weights: list[float]
    bias: float

    @classmethod
    def from_pipeline(cls, pipe: Pipeline) -> "FastRisk":
        """Fold the scaler into the logistic regression's weights."""
        scale: StandardScaler = pipe.named_steps["scale"]
        lr = pipe.named_steps["lr"]
        coef = lr.coef_[0] / scale.scale_
        bias = float(lr.intercept_[0] - np.dot(coef, scale.mean_))
        return cls([float(c) for c in coef], bias)

    def score(self, x: list[float]) -> float:
        """The risk probability of one feature vector (pure Python: no array allocation per event)."""
        z = self.bias
        for w, v in zip(self.weights, x):
            z += w * v
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0

    def contributions(self, x: list[float], means: list[float]) -> list[float]:
        """Each feature's push on the log-odds, relative to an average snapshot: what the reasons explain."""
        return [w * (v - m) for w, v, m in zip(self.weights, x, means)]


@dataclass
class FastTypes:
    """The fraud-type classifier as weight rows: softmax(W·x + b), or a sigmoid for two classes, equal to
    predict_proba (scikit-learn's call costs about a millisecond per row, and decisions come in bursts)."""

    classes: list[str]
    weights: list[list[float]]
    biases: list[float]

    @classmethod
    def from_pipeline(cls, pipe: Pipeline) -> "FastTypes":
        """Fold the scaler into the logistic regression's weights."""
        scale: StandardScaler = pipe.named_steps["scale"]
        lr = pipe.named_steps["lr"]
        coef = lr.coef_ / scale.scale_
        bias = lr.intercept_ - coef @ scale.mean_
        return cls([str(c) for c in lr.classes_], coef.tolist(), [float(b) for b in bias])

    def proba(self, x: list[float]) -> list[float]:
        """The probability of each class, in the order of `classes`."""
        z = [b + sum(w * v for w, v in zip(row, x)) for row, b in zip(self.weights, self.biases)]
        if len(self.classes) == 2:
            p = 1.0 / (1.0 + math.exp(-z[0])) if z[0] > -500 else 0.0
            return [1.0 - p, p]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        total = sum(e)
        return [v / total for v in e]


@dataclass
class Model:
    """A loaded model: the estimators, their fast forms, and the metadata they came with."""

    risk: Pipeline
    types: Pipeline
    meta: dict[str, Any]
    policy: TierPolicy | None = None  # the tier policy tuned with it, when one was

    @property
    def version(self) -> str:
        """The model version written into every decision."""
        return str(self.meta["model_version"])

    def tier_policy(self) -> TierPolicy:
        """The policy tuned with this model, else the default policy file."""
        return self.policy or TierPolicy.load()

    def fast(self) -> FastRisk:
        """The exported risk scorer."""
        return FastRisk.from_pipeline(self.risk)

    def feature_means(self) -> list[float]:
        """The training means of the risk features (the reference for reasons)."""
        return [float(m) for m in self.risk.named_steps["scale"].mean_]

    @cached_property
    def fast_types(self) -> FastTypes:
        """The exported fraud-type classifier."""
        return FastTypes.from_pipeline(self.types)

    def fraud_type(self, x_type: list[float]) -> tuple[str, float]:
        """The most likely fraud type and its probability (the first of equals, as numpy's argmax)."""
        proba = self.fast_types.proba(x_type)
        k = max(range(len(proba)), key=proba.__getitem__)
        return self.fast_types.classes[k], proba[k]


def train(X: np.ndarray, y: np.ndarray, w: np.ndarray, X_type: np.ndarray, types: np.ndarray) -> tuple[Pipeline, Pipeline]:
    """Fit the risk model (weighted) on X, y; the fraud-type classifier on the rows of X_type with a known type.

    X may hold more rows than X_type (rows labelled by field outcomes carry no fraud type).
    """
    risk = make_risk_estimator().fit(X, y, lr__sample_weight=w)
    typed = types != "unknown"
    type_model = make_type_estimator().fit(X_type[typed], types[typed])
    return risk, type_model


def risk_metrics(risk: Pipeline, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Row-level ranking quality on held-out rows (the city-level evaluation is in scorers/lab/evaluate.py)."""
    p = risk.predict_proba(X)[:, 1]
    return {"roc_auc": round(float(roc_auc_score(y, p, sample_weight=w)), 4),
            "average_precision": round(float(average_precision_score(y, p, sample_weight=w)), 4)}


def save(folder: Path, risk: Pipeline, types: Pipeline, meta: dict[str, Any]) -> Path:
    """Write the artifact: estimators and metadata, with this scikit-learn's version and the feature lists."""
    folder.mkdir(parents=True, exist_ok=True)
    full = {"model_version": meta.get("model_version") or time.strftime("risk-lr-%Y%m%d-%H%M%S"),
            "sklearn_version": sklearn.__version__, "features": list(FEATURES), "type_features": list(TYPE_FEATURES),
            "type_classes": [str(c) for c in types.classes_], **meta}
    joblib.dump({"risk": risk, "types": types}, folder / MODEL_FILE)
    (folder / META_FILE).write_text(json.dumps(full, indent=2, ensure_ascii=False))
    return folder


def load(folder: Path) -> Model:
    """Load an artifact, refusing one made under another scikit-learn or for other features."""
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("sklearn_version") != sklearn.__version__:
        raise ModelMismatch(f"model {meta.get('model_version')} was trained with scikit-learn "
                            f"{meta.get('sklearn_version')}, this is {sklearn.__version__}: retrain (`yujing train`)")
    if meta.get("features") != list(FEATURES) or meta.get("type_features") != list(TYPE_FEATURES):
        raise ModelMismatch(f"model {meta.get('model_version')} was trained on other features than this code "
                            f"computes: retrain (`yujing train`)")
    estimators = joblib.load(folder / MODEL_FILE)
    policy_file = folder / POLICY_FILE_NAME
    policy = TierPolicy.load(policy_file) if policy_file.exists() else None
    model = Model(estimators["risk"], estimators["types"], meta, policy)
    probe = np.random.default_rng(0).random((16, len(FEATURES))) * 3
    fast, exact = model.fast(), model.risk.predict_proba(probe)[:, 1]
    if max(abs(fast.score(list(row)) - e) for row, e in zip(probe, exact)) > 1e-9:
        raise ModelMismatch("the exported weights do not reproduce the model's probabilities")
    probe = np.random.default_rng(1).random((16, len(TYPE_FEATURES))) * 3
    types = model.fast_types
    exact = model.types.predict_proba(probe)
    if len(types.classes) != exact.shape[1] or any(abs(p - e) > 1e-9 for row, exact_row in zip(probe, exact)
                                                   for p, e in zip(types.proba(list(row)), exact_row)):
        raise ModelMismatch("the exported fraud-type weights do not reproduce the classifier's probabilities")
    return model
