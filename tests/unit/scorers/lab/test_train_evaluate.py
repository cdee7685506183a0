"""`yujing train` then `yujing evaluate`, as a user runs them: a model, a report, and the model ahead of the baseline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scorers.model import load


def _yujing(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "YUJING_DATA_DIR": str(tmp_path / "data")}
    res = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_train_then_evaluate(tmp_path: Path) -> None:
    out = _yujing(tmp_path, "train", "--residents", "800", "--days", "6", "--seed", "11", "--attempts", "150")
    assert "validation ROC AUC" in out
    model = load(tmp_path / "data" / "model")  # where the worker looks for it
    assert model.meta["training_data"]["simulated_city"]["residents"] == 800

    out = _yujing(tmp_path, "evaluate", "--residents", "1500", "--days", "6", "--seed", "13", "--attempts", "120")
    report = tmp_path / "data" / "reports" / "evaluation-seed-13"
    assert f"report: {report / 'index.html'}" in out
    figs = json.loads((report / "figures.json").read_text())
    for png in ("precision_recall.png", "calibration.png", "lead_times.png"):
        assert (report / png).stat().st_size > 1000
    model_figs, base = figs["model"], figs["baseline_any_indicator_contact"]
    assert model_figs["victims_with_loss"] == base["victims_with_loss"] > 10
    # The done-when of the scoring issue, on this held-out city: ahead on recall before loss, no more false alarms.
    assert model_figs["recall_before_loss"] > base["recall_before_loss"]
    assert model_figs["benign_warned_per_10k_per_day"] <= base["benign_warned_per_10k_per_day"]
    assert set(figs["decisions"]["by_tier"]) == {"T1", "T2", "T3"}
    assert "<table>" in (report / "index.html").read_text()
