"""A simulated city to learn from: residents, ordinary traffic, confounders, fraud episodes, ground truth.

`City(cfg).records()` yields contract records in event-time order (the registry first); `City.truth` then
holds every fraud attempt, `City.large_legit` the large legitimate first transfers and `City.retractions` the
indicators flagged by mistake and retracted. The city's family (scorers/lab/city/family.py) says how ordinary
life and fraud look. Seeded and deterministic: the same config gives the same records and truth.
"""
from __future__ import annotations

import heapq
from typing import Iterator

import msgspec
import numpy as np

from schemas.units import DAY_MS
from scorers.lab.city.episodes import EpisodeTruth, Ring, Rings
from scorers.lab.city.population import CityConfig, Population, phone_of, second_phone_of
from scorers.lab.city.traffic import SLICE_MS, Traffic

__all__ = ["City", "CityConfig", "EpisodeTruth", "Retraction"]


class Retraction(msgspec.Struct, array_like=True):
    """An indicator that was retracted: its index key, when it was added and when retracted."""

    value_key: str
    add_ts: int
    retract_ts: int


class City:
    """One simulated city, from its config."""

    def __init__(self, cfg: CityConfig) -> None:
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        self.pop = Population(cfg, rng)
        self.traffic = Traffic(self.pop, rng, cfg.life, np.random.default_rng(cfg.seed + 7))
        n_rings = cfg.rings or max(9, cfg.residents // 1500)
        self.rings = Rings(self.pop, n_rings, cfg.seed, cfg.attack)
        self.truth: list[EpisodeTruth] = []
        self.retractions: list[Retraction] = []
        self.end_ts = cfg.start_ts + cfg.days * DAY_MS

    def ring(self, ring_id: str) -> Ring:
        """A ring by id."""
        return self.rings.rings[int(ring_id[1:])]

    def _plan(self) -> list[tuple[int, int, str, msgspec.Struct]]:
        """Every fraud attempt, case report and mistaken flag of the run, on one heap."""
        cfg, rng = self.cfg, self.rings.rng
        heap: list[tuple[int, int, str, msgspec.Struct]] = []
        attack = cfg.attack
        attempts = np.random.default_rng(cfg.seed + 1).poisson(
            attack.attempts_per_10k_per_day * cfg.residents / 10_000 * cfg.days)
        for _ in range(int(attempts)):
            ring = self.rings.pick()
            truth, records = self.rings.episode(ring, cfg.start_ts + rng.randrange(cfg.days * DAY_MS))
            records += self.rings.report(truth, ring)
            if truth.first_loss_ts is not None and truth.first_loss_ts >= self.end_ts:
                truth.first_loss_ts, truth.loss_fen = None, 0  # beyond the simulated horizon: not (yet) lost
            self.truth.append(truth)
            for ts, topic, rec in records:
                if ts < self.end_ts:
                    heapq.heappush(heap, (ts, len(heap), topic, rec))  # type: ignore[arg-type]
        flags = np.random.default_rng(cfg.seed + 2).poisson(attack.mistaken_flags * cfg.residents / 10_000 * cfg.days)
        for _ in range(int(flags)):
            added, retracted = self.rings.wrongly_flagged(cfg.start_ts + rng.randrange(cfg.days) * DAY_MS)
            ind = added[2]
            self.retractions.append(Retraction(f"{ind.type}:{ind.value}", added[0], retracted[0]))  # type: ignore[attr-defined]
            for ts, topic, rec in (added, retracted):
                heapq.heappush(heap, (ts, len(heap), topic, rec))  # type: ignore[arg-type]
        return heap

    def person_keys(self, ep: EpisodeTruth) -> list[str]:
        """The pipeline's person keys of an episode's victim: the subject, and the line when it is unregistered
        (an unregistered second line keeps its own state, apart from the person's payments)."""
        i = int(ep.victim[1:])
        unregistered = ep.victim_line != phone_of(i) and bool(self.pop.second_unregistered[i])
        return sorted({ep.victim, ep.victim_line} if unregistered else {ep.victim})

    def resident_keys(self) -> set[str]:
        """The pipeline's person keys that are residents: subjects, and unregistered lines of residents."""
        pop = self.pop
        keys = {pop.subject_id(i) for i in range(pop.n)}
        return keys | {second_phone_of(i) for i in range(pop.n) if pop.second_unregistered[i]}

    @property
    def large_legit(self) -> list[str]:
        """Transfer ids of the large legitimate first transfers (a stop-payment there would hurt)."""
        return self.traffic.large_legit

    def records(self) -> Iterator[tuple[str, msgspec.Struct]]:
        """(topic, record) in event-time order: the registry, then traffic and episodes slice by slice."""
        cfg = self.cfg
        for i in range(self.pop.n):
            yield "registry.subjects", self.pop.subject(i, cfg.start_ts - DAY_MS)
        heap = self._plan()
        for start in range(cfg.start_ts, self.end_ts, SLICE_MS):
            batch: list[tuple[str, msgspec.Struct]] = list(self.traffic.slice(start))  # type: ignore[arg-type]
            while heap and heap[0][0] < start + SLICE_MS:
                _, _, topic, rec = heapq.heappop(heap)
                batch.append((topic, rec))
            batch.sort(key=lambda tr: tr[1].ts)  # type: ignore[attr-defined]
            yield from batch
