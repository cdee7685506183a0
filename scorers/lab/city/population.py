"""The simulated city's residents: lines, cards across banks, ages, grids, stations, and who they talk to."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from schemas.records import Subject
from scorers.lab.city.family import FAMILIES, Attack, Family, Life

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
BANKS = ("ICBC", "ABC", "BOC", "CCB", "CMB", "PSBC")
RESIDENTS_PER_GRID = 500
GRIDS_PER_STATION = 8


@dataclass(frozen=True)
class CityConfig:
    """The knobs of a simulated city: its size, seed, and the family its life and fraud are drawn from."""

    residents: int = 20_000
    days: int = 3
    seed: int = 1
    start_ts: int = 1_764_518_400_000  # 2025-12-01 00:00 +08:00
    family: Family = field(default_factory=lambda: FAMILIES["textbook"])
    attempts_per_10k_per_day: float | None = None  # overrides the family's incidence when set
    rings: int = 0  # fraud rings; 0 = one per 1,500 residents, at least 9 (one per fraud type)

    @property
    def life(self) -> Life:
        """How ordinary residents behave here."""
        return self.family.life

    @property
    def attack(self) -> Attack:
        """How fraud shows up here (with the incidence overridden when the config says so)."""
        if self.attempts_per_10k_per_day is None:
            return self.family.attack
        return replace(self.family.attack, attempts_per_10k_per_day=self.attempts_per_10k_per_day)

    def describe(self) -> dict:
        """Size, seed and the family's parameters: what a reader needs to know of what was assumed."""
        return {"residents": self.residents, "days": self.days, "seed": self.seed, "start_ts": self.start_ts,
                "rings": self.rings, "family": {**self.family.describe(), "attack": asdict(self.attack)}}


def phone_of(i: int) -> str:
    """A resident's primary line."""
    return f"+8613{i:09d}"


def second_phone_of(i: int) -> str:
    """A resident's second line, when they have one."""
    return f"+8615{i:09d}"


class Population:
    """Residents as numpy arrays, with the registry records derived from them."""

    def __init__(self, cfg: CityConfig, rng: np.random.Generator) -> None:
        n = cfg.residents
        self.n = n
        life = cfg.life
        self.birth_year = rng.integers(life.birth_years[0], life.birth_years[1], n)
        self.cards = rng.integers(1, 4, n)  # 1–3 cards, across banks
        self.second_line = rng.random(n) < life.second_line_share
        self.second_unregistered = self.second_line & (rng.random(n) < life.unregistered_share)
        self.contacts = rng.integers(0, n, (n, 12))  # the residents each one talks to
        self.family_abroad = rng.random(n) < life.family_abroad_share
        self.work_meetings = rng.random(n) < life.work_meeting_share
        self.surname = rng.integers(0, len(SURNAMES), n)

    @staticmethod
    def subject_id(i: int) -> str:
        """The pseudonymous registry id of resident i."""
        return f"P{i:07d}"

    @staticmethod
    def grid_of(i: int) -> str:
        """The community grid resident i lives in."""
        return f"G{i // RESIDENTS_PER_GRID:04d}"

    @staticmethod
    def station_of(i: int) -> str:
        """The police station responsible for resident i's grid."""
        return f"ST{i // (RESIDENTS_PER_GRID * GRIDS_PER_STATION):03d}"

    def accounts_of(self, i: int) -> list[str]:
        """Resident i's cards, one per bank (deterministic numbers)."""
        return [f"62{b}{i:012d}" for b in range(int(self.cards[i]))]

    def bank_of(self, account: str) -> str:
        """The bank of one of the city's card numbers."""
        return BANKS[int(account[2]) % len(BANKS)] if account[2].isdigit() else "OTHER"

    def subject(self, i: int, ts: int) -> Subject:
        """Resident i's real-name registry record (an unregistered second line is left out)."""
        phones = [phone_of(i)]
        if self.second_line[i] and not self.second_unregistered[i]:
            phones.append(second_phone_of(i))
        return Subject(subject_id=self.subject_id(i), phones=phones, accounts=self.accounts_of(i),
                       birth_year=int(self.birth_year[i]), grid_id=self.grid_of(i), station_id=self.station_of(i),
                       name_masked=SURNAMES[int(self.surname[i])] + "*", ts=ts)

    def age(self, i: int, year: int = 2025) -> int:
        """Resident i's age in the simulated year."""
        return year - int(self.birth_year[i])
