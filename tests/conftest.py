"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from scorers.lab.city import CityConfig

# Small cities: a model in ~30 s, an evaluation in ~20 s. Deterministic (seeded), so their figures are too.
SMALL_TRAIN = CityConfig(residents=800, days=6, seed=11, attempts_per_10k_per_day=150)
SMALL_VALIDATION = CityConfig(residents=800, days=6, seed=12, attempts_per_10k_per_day=150)
SMALL_EVALUATION = CityConfig(residents=1500, days=6, seed=13, attempts_per_10k_per_day=120)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained once per test session on a small simulated city; returns its folder."""
    from scorers.lab.training import train_model

    folder = tmp_path_factory.mktemp("model") / "model"
    train_model(folder, SMALL_TRAIN, SMALL_VALIDATION, note="test fixture")
    return folder
