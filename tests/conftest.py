"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from scorers.lab.protocol import Size
from scorers.lab.training import Plan

# The operators' default language, whatever the shell says: tests that check words set YUJING_LANG themselves, and
# the committed dashboard and alert rules are written in it.
os.environ.pop("YUJING_LANG", None)

# Small cities: a model in about a minute. Deterministic (seeded), so its figures are too.
SMALL_PLAN = Plan(training=("draw-101", "draw-102", "draw-103"), tuning=("draw-201", "draw-202"),
                  train_size=Size(700, 4, incidence=120.0), tune_size=Size(700, 4, incidence=80.0))


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained once per test session on a small simulated city; returns its folder."""
    from scorers.lab.training import train_model

    folder = tmp_path_factory.mktemp("model") / "model"
    train_model(folder, SMALL_PLAN, note="test fixture")
    return folder
