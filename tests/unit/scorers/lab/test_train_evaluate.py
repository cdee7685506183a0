"""`yujing train` then `yujing evaluate`, as a user runs them: a model fitted on some families, judged on one it
never saw beside the naive baseline, and a refusal to report on a family it was fitted to."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scorers.model import load

TRAINING, TUNING = "draw-101,draw-102,draw-103", "draw-201,draw-202"


def _yujing(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YUJING_DATA_DIR": str(tmp_path / "data")}
    res = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, capture_output=True, text=True,
                         timeout=900)
    assert (res.returncode == 0) == ok, res.stdout + res.stderr
    return res


def test_train_on_some_families_then_evaluate_on_one_held_out(tmp_path: Path) -> None:
    out = _yujing(tmp_path, "train", "--training", TRAINING, "--tuning", TUNING, "--residents", "700",
                  "--days", "4").stdout
    assert "thresholds t3" in out
    model = load(tmp_path / "data" / "model")  # where the worker looks for it, with its tuned policy
    assert model.meta["training_data"]["families"] == TRAINING.split(",")
    assert model.meta["tuning"]["families"] == TUNING.split(",") and model.policy is not None

    refused = _yujing(tmp_path, "evaluate", "--families", "draw-102", ok=False)
    assert "fitted to draw-102" in refused.stderr

    # quick_strikes: short scripts, money within minutes of the first contact (the hard case for early warning)
    out = _yujing(tmp_path, "evaluate", "--families", "quick_strikes", "--residents", "1500", "--days", "4").stdout
    report = tmp_path / "data" / "reports" / "evaluation"
    assert f"report: {report / 'index.html'}" in out
    figs = json.loads((report / "figures.json").read_text())
    for png in ("recall.png", "ordinary.png", "lead_times.png"):
        assert (report / png).stat().st_size > 1000
    held = figs["per_family"]["quick_strikes"]
    model_figs, base = held["model"], held["baseline_any_indicator_contact"]
    assert model_figs["victims_with_loss"] == base["victims_with_loss"] >= 10
    # the small version: ahead of the naive baseline on recall before loss, no more ordinary people warned
    assert model_figs["recall_before_loss"] > base["recall_before_loss"]
    assert model_figs["ordinary_warned_per_10k_per_day"] <= base["ordinary_warned_per_10k_per_day"]
    assert figs["worst_case"]["model"]["recall_before_loss"]["family"] == "quick_strikes"
    assert "quick_strikes" in (report / "index.html").read_text()
