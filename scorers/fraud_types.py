"""Fraud-type classification features: the victim features plus the types named by the person's case hits."""
from __future__ import annotations

from schemas.records import FRAUD_TYPES
from scorers.features import FEATURES, HOUR
from streams.person_state import PersonState

TYPES = tuple(t for t in FRAUD_TYPES if t != "unknown")
TYPE_FEATURES: tuple[str, ...] = FEATURES + tuple(f"hit_type_{t}" for t in TYPES)


def type_features(x: list[float], state: PersonState, now: int) -> list[float]:
    """`x` followed by, per fraud type, the confidence-weighted hits naming it in the last 72 h."""
    counts = dict.fromkeys(TYPES, 0.0)
    for h in state.hits:
        if now - 72 * HOUR <= h.ts <= now and h.fraud_type in counts:
            counts[h.fraud_type] += h.confidence
    return x + [counts[t] for t in TYPES]
