"""Reminder campaigns (宣传), pure: who is in the at-risk group, and the reminder each of them gets.

A campaign is aimed by age band, grid or station, and recent exposure to a fraud type (a contact with one of
its case elements, from the pipeline's triggers). Reminders travel the warnings' SMS queue with the same
cooldown (at a rank below every warning, so a later warning still goes out), quiet hours and rate limits; the
SMS adapter sends them only when no warning is waiting.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from dispatch.plan import TZ_OFFSET_MS, not_before, templates
from schemas.records import SmsTask, Subject
from schemas.units import DAY_MS, HOUR_MS


@dataclass(frozen=True)
class Exposure:
    """A person's contact with a case element of a fraud type, at event time `ts`."""

    subject_id: str
    fraud_type: str
    ts: int


@dataclass(frozen=True)
class Campaign:
    """What the operations center launches: the topic, the group aimed at, and when (event time)."""

    fraud_type: str
    ts: int
    age_min: int | None = None
    age_max: int | None = None
    grids: frozenset[str] = field(default_factory=frozenset)
    stations: frozenset[str] = field(default_factory=frozenset)
    exposed_to: str | None = None  # only people exposed to this fraud type (None: the whole group)
    exposed_within_ms: int = 72 * HOUR_MS
    valid_ms: int = DAY_MS  # how long a reminder may wait (quiet hours, rate limits) before it is dropped
    name: str = ""

    @property
    def campaign_id(self) -> str:
        """Stable for the same aim on the same local day: launching it twice sends nothing twice."""
        day = (self.ts + TZ_OFFSET_MS) // DAY_MS
        parts = [self.name, self.fraud_type, str(day), str(self.age_min), str(self.age_max),
                 ",".join(sorted(self.grids)), ",".join(sorted(self.stations)), str(self.exposed_to),
                 str(self.exposed_within_ms)]
        return "cmp-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def age_at(birth_year: int, ts: int) -> int:
    """A person's age (in whole years of the calendar) at event time `ts`, in the city's local time."""
    return datetime.fromtimestamp((ts + TZ_OFFSET_MS) / 1000, timezone.utc).year - birth_year


def audience(campaign: Campaign, subjects: Iterable[Subject], exposures: Iterable[Exposure]) -> list[Subject]:
    """The registered people the campaign reaches, in subject order."""
    exposed: set[str] | None = None
    if campaign.exposed_to is not None:
        since = campaign.ts - campaign.exposed_within_ms
        exposed = {e.subject_id for e in exposures
                   if e.fraud_type == campaign.exposed_to and since <= e.ts <= campaign.ts}
    out = []
    for s in subjects:
        age = age_at(s.birth_year, campaign.ts)
        if campaign.age_min is not None and age < campaign.age_min:
            continue
        if campaign.age_max is not None and age > campaign.age_max:
            continue
        if campaign.grids and s.grid_id not in campaign.grids:
            continue
        if campaign.stations and s.station_id not in campaign.stations:
            continue
        if exposed is not None and s.subject_id not in exposed:
            continue
        out.append(s)
    return sorted(out, key=lambda s: s.subject_id)


def reminder_text(fraud_type: str) -> str:
    """The reminder text for a fraud type."""
    t = templates()
    return t["reminder"].get(fraud_type, t["reminder"]["unknown"]).format(hotline=t["hotline"])


def plan_reminder(campaign: Campaign, subject: Subject) -> SmsTask | None:
    """The reminder to one person (None without a phone line), sent after quiet hours."""
    if not subject.phones:
        return None
    cid = campaign.campaign_id
    start = not_before(campaign.ts, quiet=True)
    return SmsTask(warning_id=cid, tier="T3", fraud_type=campaign.fraud_type,  # type: ignore[arg-type]
                   ts=campaign.ts, message_id=hashlib.sha1(f"{cid}|{subject.subject_id}".encode()).hexdigest()[:24],
                   to=subject.phones[0], text=reminder_text(campaign.fraud_type), not_before_ts=start,
                   expires_ts=start + campaign.valid_ms, kind="reminder", campaign_id=cid)


def rising_types(exposures: Iterable[Exposure], now: int, window_ms: int = DAY_MS) -> list[tuple[str, int, int]]:
    """Exposures per fraud type in the last window and the one before it, the steepest rise first."""
    recent: Counter[str] = Counter()
    before: Counter[str] = Counter()
    for e in exposures:
        if now - window_ms <= e.ts <= now:
            recent[e.fraud_type] += 1
        elif now - 2 * window_ms <= e.ts < now - window_ms:
            before[e.fraud_type] += 1
    types = set(recent) | set(before)
    return sorted(((t, recent[t], before[t]) for t in types), key=lambda r: (-(r[1] - r[2]), r[0]))
