"""Training data: a simulated city replayed through the pipeline's own logic, snapshots labelled by ground truth."""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from schemas.internal import Output, PersonEvent
from schemas.units import DAY_MS, HOUR_MS
from scorers.ages import Ages
from scorers.features import FEATURES, Snapshot, features
from scorers.fraud_types import type_features
from scorers.lab.city import City, CityConfig, EpisodeTruth
from streams.local import LocalPipeline
from streams.person_state import PersonState, Update, as_of, event_time

NEGATIVE_KEEP = 0.1  # share of negative snapshots kept; their weight stands for the rest


def episode_keys(ep: EpisodeTruth, lookup: Callable[[str], str | None]) -> list[str]:
    """The pipeline's person keys of an episode's victim: the subject, and the line itself when unregistered
    (an unregistered second line keeps its own state, apart from the person's payments)."""
    return sorted({ep.victim, ep.victim if lookup(f"phone:{ep.victim_line}") else ep.victim_line})


def keys_of_episodes(truth: list[EpisodeTruth], lookup: Callable[[str], str | None]) -> dict[str, list[str]]:
    """Episode id → the victim's person keys, for every episode."""
    return {ep.episode_id: episode_keys(ep, lookup) for ep in truth}


def victim_windows(truth: list[EpisodeTruth], pipeline_keys: Callable[[EpisodeTruth], list[str]]) -> dict[str, list]:
    """Per person key, the (start, end, episode) windows in which the person is being defrauded."""
    windows: dict[str, list] = {}
    for ep in truth:
        if not ep.engaged:
            continue
        end = (ep.first_loss_ts or ep.start_ts + 6 * DAY_MS) + 2 * HOUR_MS
        for key in pipeline_keys(ep):
            windows.setdefault(key, []).append((ep.start_ts, end, ep))
    return windows


def feed_city(city: City, pipeline: LocalPipeline, on_plan: Callable[[list[EpisodeTruth]], None]) -> None:
    """Feed every record of the city; `on_plan` gets the ground truth once the registry is in and the plan exists."""
    planned = False
    for topic, rec in city.records():
        if not planned and topic != "registry.subjects":
            on_plan(city.truth)  # the generator plans the episodes before its first traffic record
            planned = True
        pipeline.feed(topic, rec)
    pipeline.finish()


@dataclass
class Dataset:
    """Feature rows with labels, weights and the fraud type of positive rows."""

    X: list[list[float]] = field(default_factory=list)
    X_type: list[list[float]] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    fraud_type: list[str] = field(default_factory=list)
    rows_seen: int = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X, y and sample weights as arrays."""
        return np.asarray(self.X), np.asarray(self.y), np.asarray(self.weight)

    def fingerprint(self) -> str:
        """A short hash of the rows, to name the training data in the model's artifact."""
        h = hashlib.sha256(np.asarray(self.X).tobytes() + np.asarray(self.y).tobytes())
        return h.hexdigest()[:16]


def build_dataset(cfg: CityConfig) -> tuple[Dataset, City]:
    """Replay the city and collect snapshots labelled by its ground truth."""
    city = City(cfg)
    data = Dataset()
    rng = random.Random(cfg.seed)
    pipeline = LocalPipeline()
    ages = Ages(pipeline.processor.lookup)
    windows: dict[str, list] = {}

    def keys(ep: EpisodeTruth) -> list[str]:
        return episode_keys(ep, pipeline.processor.lookup)

    def hook(state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        if not update.noted:
            return []  # the live scorer looks only when the evidence changed; so does training
        data.rows_seen += 1
        now = event_time(pe)
        label, ftype = 0, "unknown"
        for start, end, ep in windows.get(state.person, ()):
            if start <= now <= end:
                label, ftype = 1, ep.fraud_type
        x = features(Snapshot(as_of(state, now), now, ages(state.subject_id)))
        if label == 0 and rng.random() > NEGATIVE_KEEP:
            return []  # negatives are sampled; the kept ones stand for the rest through their weight
        weight = 1.0 if label else 1.0 / NEGATIVE_KEEP
        data.X.append(x)
        data.X_type.append(type_features(x, as_of(state, now), now))
        data.y.append(label)
        data.weight.append(weight)
        data.fraud_type.append(ftype)
        return []

    pipeline.processor.on_person = hook
    feed_city(city, pipeline, lambda truth: windows.update(victim_windows(truth, keys)))
    assert len(FEATURES) == len(data.X[0])
    return data, city
