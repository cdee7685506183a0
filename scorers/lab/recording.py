"""One replay of a simulated city, recorded: every moment a decision looks at, with its features and evidence.

The city goes once through the pipeline's own logic (`streams/local.py`); at every noted event the recorder
observes the moment exactly as the live decider does (`scorers.decide.observe`) and keeps it, columnar. A model
and a tier policy can then be run over the recording in a fraction of a second (`scorers/lab/evaluate.py`),
which is what training, threshold tuning and the evaluation of many families need. The recording also keeps the
naive baseline's warnings (every contact with a known indicator) and the city's ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schemas.internal import Output, PersonEvent
from scorers.ages import Ages
from scorers.decide import observe
from scorers.fraud_types import type_features
from scorers.lab.city import City, CityConfig, EpisodeTruth, Retraction
from scorers.tiers import Evidence, TierPolicy
from streams.local import LocalPipeline
from streams.person_state import PersonState, Update

EVIDENCE_FIELDS = ("transfer_now", "transfer_to_new_payee", "payee_flagged", "strong_hit", "stages",
                   "transfer_after_stages", "news")


@dataclass
class Recording:
    """The moments of one city's replay (rows in decision order), the baseline's warnings and the truth."""

    config: dict
    truth: list[EpisodeTruth]
    large_legit: set[str]
    retractions: list[Retraction]
    residents: int
    days: int
    keys_of: dict[str, list[str]]  # episode id → the victim's person keys
    resident_keys: set[str] = field(default_factory=set)  # person keys that are residents (not shops' accounts)
    persons: list[str] = field(default_factory=list)  # person index → key
    person: list[int] = field(default_factory=list)  # per row: the person's index
    now: list[int] = field(default_factory=list)
    x: list[list[float]] = field(default_factory=list)
    x_type: list[list[float]] = field(default_factory=list)  # the type classifier's extra features
    evidence: list[tuple] = field(default_factory=list)  # the fields of `Evidence`, in their order
    transfer: list[tuple[str, int] | None] = field(default_factory=list)  # (transfer id, amount) it concerns
    episode_start: list[int] = field(default_factory=list)
    hit_keys: list[tuple[str, ...]] = field(default_factory=list)  # the case elements behind its live hits
    baseline: dict[str, list[int]] = field(default_factory=dict)  # person → times of indicator hits
    _by_person: dict[int, np.ndarray] | None = field(default=None, repr=False)

    def matrix(self) -> np.ndarray:
        """The risk features of every row."""
        return np.asarray(self.x, dtype=float)

    def rows_by_person(self) -> dict[int, np.ndarray]:
        """Row numbers of each person, in decision order."""
        if self._by_person is None:
            out: dict[int, list[int]] = {}
            for row, p in enumerate(self.person):
                out.setdefault(p, []).append(row)
            self._by_person = {p: np.asarray(rows) for p, rows in out.items()}
        return self._by_person

    def evidence_array(self) -> np.ndarray:
        """The tier evidence of every row as numbers, in the order of `EVIDENCE_FIELDS`."""
        return np.asarray(self.evidence, dtype=int).reshape(-1, len(EVIDENCE_FIELDS))

    def evidence_of(self, row: int) -> Evidence:
        """The tier evidence of one row."""
        return Evidence(*self.evidence[row])

    @property
    def fraud_transfers(self) -> set[str]:
        """Every transfer a victim made to a ring."""
        return {tid for ep in self.truth for tid in ep.transfer_ids}


def feed_city(city: City, pipeline: LocalPipeline) -> None:
    """Feed every record of the city into the in-process pipeline, then take the decisions still waiting."""
    for topic, rec in city.records():
        pipeline.feed(topic, rec)
    pipeline.finish()


def record(cfg: CityConfig, policy: TierPolicy | None = None) -> Recording:
    """Replay the city through the pipeline and record every noted moment (no decisions are taken)."""
    policy = policy or TierPolicy.load()
    city = City(cfg)
    pipeline = LocalPipeline()
    ages = Ages(pipeline.processor.lookup)
    rec = Recording(config=cfg.describe(), truth=[], large_legit=set(), retractions=[], residents=cfg.residents,
                    days=cfg.days, keys_of={})
    index: dict[str, int] = {}

    def hook(state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        if not update.noted:
            return []
        m = observe(state, pe, ages(state.subject_id), policy)
        if state.person not in index:
            index[state.person] = len(rec.persons)
            rec.persons.append(state.person)
        rec.person.append(index[state.person])
        rec.now.append(m.now)
        rec.x.append(m.x)
        rec.x_type.append(type_features(m.x, m.seen, m.now)[len(m.x):])
        ev = m.evidence
        rec.evidence.append(tuple(getattr(ev, name) for name in EVIDENCE_FIELDS))
        rec.transfer.append((m.transfer.transfer_id, m.transfer.amount_fen) if m.transfer is not None else None)
        rec.episode_start.append(m.episode_start)
        rec.hit_keys.append(tuple(sorted({h.value_key for h in m.seen.hits
                                          if h.mode != "fanout" and m.now - policy.quiet_ms <= h.ts <= m.now})))
        return []

    pipeline.processor.on_person = hook
    feed_city(city, pipeline)
    for out in pipeline.sent["yujing.triggers"]:
        t = out.value
        if t.cause == "indicator_hit" and t.mode != "fanout":  # type: ignore[attr-defined]
            rec.baseline.setdefault(t.person, []).append(t.ts)  # type: ignore[attr-defined]
    lookup = pipeline.processor.lookup
    rec.truth, rec.large_legit, rec.retractions = city.truth, set(city.large_legit), city.retractions
    rec.keys_of = {ep.episode_id: sorted({ep.victim, ep.victim if lookup(f"phone:{ep.victim_line}")
                                          else ep.victim_line}) for ep in city.truth}
    rec.resident_keys = city.resident_keys()
    return rec
