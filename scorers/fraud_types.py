"""Fraud-type classification features: the victim features plus the types named by the person's case hits."""
from __future__ import annotations

from schemas.records import FRAUD_TYPES
from schemas.units import HOUR_MS
from scorers.features import FEATURES
from streams.person_state import PersonState, hit_live

TYPES = tuple(t for t in FRAUD_TYPES if t != "unknown")
TYPE_FEATURES: tuple[str, ...] = FEATURES + tuple(f"hit_type_{t}" for t in TYPES)


def type_features(x: list[float], state: PersonState, now: int) -> list[float]:
    """`x` followed by, per fraud type, the confidence of the case elements naming it contacted in the last 72 h
    (each element once, at its highest confidence; none whose indicator was retracted by `now`)."""
    best: dict[tuple[str, str], float] = {}
    for h in state.hits:
        if now - 72 * HOUR_MS <= h.ts and hit_live(h, now) and h.fraud_type in TYPES:
            key = (h.fraud_type, h.value_key)
            best[key] = max(best.get(key, 0.0), h.confidence)
    counts = dict.fromkeys(TYPES, 0.0)
    for (fraud_type, _), confidence in best.items():
        counts[fraud_type] += confidence
    return x + [counts[t] for t in TYPES]
