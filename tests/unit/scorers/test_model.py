"""The model artifact: its metadata, the refusal of a mismatched artifact, and exported weights that agree."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn

from scorers.features import FEATURES
from scorers.fraud_types import TYPE_FEATURES
from scorers.model import META_FILE, FastTypes, ModelMismatch, load, make_type_estimator
from scorers.tiers import TierPolicy
from tests.conftest import SMALL_PLAN


def test_artifact_carries_its_provenance(small_model: Path) -> None:
    meta = json.loads((small_model / META_FILE).read_text())
    assert meta["sklearn_version"] == sklearn.__version__
    assert meta["features"] == list(FEATURES)
    assert meta["training_data"]["families"] == list(SMALL_PLAN.training) and meta["training_data"]["positives"] > 50
    assert meta["tuning"]["families"] == list(SMALL_PLAN.tuning) and "within_budget" in meta["tuning"]["worst_case"]
    assert len(meta["training_data"]["fingerprint"]) == 16
    rows = meta["evaluation"]["rows_of_tuning_families"]
    assert 0.5 < rows["roc_auc"] <= 1 and "fraud_type_accuracy" in rows
    policy = load(small_model).policy  # the thresholds tuned with it travel with it
    assert policy is not None and policy.version.startswith(TierPolicy.load().version + "/tuned-")


def _tampered(small_model: Path, tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(small_model, folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta.update(changes)
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder


def test_refuses_another_sklearn_version(small_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelMismatch, match="scikit-learn 0.24.2"):
        load(_tampered(small_model, tmp_path, sklearn_version="0.24.2"))


def test_refuses_another_feature_list(small_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelMismatch, match="other features"):
        load(_tampered(small_model, tmp_path, features=list(FEATURES)[:-1]))


def test_exported_weights_give_sklearns_probabilities(small_model: Path) -> None:
    model = load(small_model)
    fast = model.fast()
    X = np.random.default_rng(3).random((500, len(FEATURES))) * np.linspace(1, 12, len(FEATURES))
    exact = model.risk.predict_proba(X)[:, 1]
    assert max(abs(fast.score(list(x)) - p) for x, p in zip(X, exact)) < 1e-12


def test_exported_type_weights_give_sklearns_probabilities_and_its_choice(small_model: Path) -> None:
    model = load(small_model)
    X = np.random.default_rng(4).random((500, len(TYPE_FEATURES))) * 4
    for x, exact in zip(X, model.types.predict_proba(X)):
        assert max(abs(p - e) for p, e in zip(model.fast_types.proba(list(x)), exact)) < 1e-12
        fraud_type, p = model.fraud_type(list(x))
        assert fraud_type == model.types.classes_[int(np.argmax(exact))] and abs(p - exact.max()) < 1e-12


def test_two_fraud_types_are_one_sigmoid_as_in_sklearn() -> None:
    X = np.random.default_rng(5).random((300, 4))
    pipe = make_type_estimator().fit(X, np.where(X[:, 0] + X[:, 1] > 1, "romance", "fake_loan"))
    fast = FastTypes.from_pipeline(pipe)
    for x, exact in zip(X, pipe.predict_proba(X)):
        assert max(abs(p - e) for p, e in zip(fast.proba(list(x)), exact)) < 1e-12


def test_rows_from_field_outcomes_join_the_risk_model_only() -> None:
    from scorers.model import train

    rng = np.random.default_rng(1)
    X = rng.random((300, len(FEATURES)))
    y = (X[:, 3] > 0.7).astype(int)
    types = np.where(y == 1, "romance", "unknown")
    X_type = np.hstack([X, np.zeros((300, 9))])
    extra = rng.random((20, len(FEATURES)))  # labelled by outcomes: no fraud type
    risk, type_model = train(np.vstack([X, extra]), np.concatenate([y, np.ones(20, int)]), np.ones(320),
                             X_type, np.concatenate([types[:-1], ["fake_loan"]]))
    assert risk.n_features_in_ == len(FEATURES) and set(type_model.classes_) == {"romance", "fake_loan"}
