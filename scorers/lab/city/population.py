"""The simulated city's residents: lines, cards across banks, ages, grids, stations, and who they talk to."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.records import Subject

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
BANKS = ("ICBC", "ABC", "BOC", "CCB", "CMB", "PSBC")
RESIDENTS_PER_GRID = 500
GRIDS_PER_STATION = 8


@dataclass(frozen=True)
class CityConfig:
    """The knobs of a simulated city (defaults: a small city that runs in a minute here)."""

    residents: int = 20_000
    days: int = 3
    seed: int = 1
    start_ts: int = 1_764_518_400_000  # 2025-12-01 00:00 +08:00
    attempts_per_10k_per_day: float = 12.0  # fraud contacts (engaged or not); real incidence is far lower
    second_line_share: float = 0.2
    unregistered_share: float = 0.25  # of second lines: bought without real-name registration (or not yet)
    family_abroad_share: float = 0.01
    work_meeting_share: float = 0.03
    rings: int = 0  # fraud rings; 0 = one per 1,500 residents, at least 9 (one per fraud type)


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
        self.birth_year = rng.integers(1935, 2006, n)
        self.cards = rng.integers(1, 4, n)  # 1–3 cards, across banks
        self.second_line = rng.random(n) < cfg.second_line_share
        self.second_unregistered = self.second_line & (rng.random(n) < cfg.unregistered_share)
        self.contacts = rng.integers(0, n, (n, 12))  # the residents each one talks to
        self.family_abroad = rng.random(n) < cfg.family_abroad_share
        self.work_meetings = rng.random(n) < cfg.work_meeting_share
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
