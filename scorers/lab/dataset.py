"""Training data: the recorded moments of simulated cities, labelled by their ground truth.

A row is one moment the live decider would judge (scorers/lab/recording.py); its label says whether the person
was being defrauded then (from the first contact to two hours after the loss). Ordinary moments are sampled,
and the kept ones weigh for the rest.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from scorers.lab.evaluate import labels
from scorers.lab.recording import Recording

NEGATIVE_KEEP = 0.1  # share of ordinary moments kept; their weight stands for the rest


@dataclass
class Dataset:
    """Feature rows with labels, weights and the fraud type of positive rows."""

    X: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    X_type: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fraud_type: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    rows_seen: int = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X, y and sample weights."""
        return self.X, self.y, self.weight

    def fingerprint(self) -> str:
        """A short hash of the rows, to name the training data in the model's artifact."""
        return hashlib.sha256(self.X.tobytes() + self.y.tobytes()).hexdigest()[:16]


def _fraud_type_per_row(rec: Recording) -> list[str]:
    kinds: dict[str, list[tuple[int, int, str]]] = {}
    for ep in rec.truth:
        if ep.engaged:
            end = (ep.first_loss_ts or ep.start_ts + 6 * 86_400_000) + 7_200_000
            for k in rec.keys_of[ep.episode_id]:
                kinds.setdefault(k, []).append((ep.start_ts, end, ep.fraud_type))
    return [next((t for s, e, t in kinds.get(rec.persons[p], ()) if s <= now <= e), "unknown")
            for p, now in zip(rec.person, rec.now)]


def dataset(recordings: list[Recording], seed: int = 0) -> Dataset:
    """The rows of every recording: all defrauded moments, a seeded sample of the ordinary ones."""
    rng = np.random.default_rng(seed)
    xs, xts, ys, ws, fts, seen = [], [], [], [], [], 0
    for rec in recordings:
        if not rec.x:
            continue
        y = labels(rec)
        keep = (y == 1) | (rng.random(len(y)) < NEGATIVE_KEEP)
        xs.append(rec.matrix()[keep])
        xts.append(np.hstack([rec.matrix(), np.asarray(rec.x_type, dtype=float)])[keep])
        ys.append(y[keep])
        ws.append(np.where(y[keep] == 1, 1.0, 1.0 / NEGATIVE_KEEP))
        fts.append(np.asarray(_fraud_type_per_row(rec), dtype=object)[keep])
        seen += len(y)
    return Dataset(np.vstack(xs), np.vstack(xts), np.concatenate(ys), np.concatenate(ws), np.concatenate(fts), seen)
