"""Reminder campaigns: who is in the group, the reminder each gets, stable ids, what is on the rise."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dispatch.campaign import (
    Campaign,
    Exposure,
    age_at,
    audience,
    plan_reminder,
    rising_types,
)
from schemas.units import DAY_MS, HOUR_MS

NOON = 1_764_561_600_000  # 2025-12-01 12:00 local time (04:00 UTC)


def person(sid: str, born: int, grid: str = "G1", station: str = "ST1", phones: tuple[str, ...] = ("+8613800000001",)):
    from schemas.records import Subject

    return Subject(subject_id=sid, phones=list(phones), accounts=[], birth_year=born, grid_id=grid,
                   station_id=station, name_masked="王*", ts=0)


PEOPLE = [person("a", 1950), person("b", 1960, grid="G2"), person("c", 1995), person("d", 1958, station="ST2"),
          person("e", 1940, phones=())]
EXPOSED = [Exposure("c", "fake_customer_service", NOON - 2 * HOUR_MS), Exposure("b", "fake_customer_service", NOON - 4 * DAY_MS),
           Exposure("a", "romance", NOON - HOUR_MS)]


@pytest.mark.parametrize(("aim", "expected"), [
    ({}, ["a", "b", "c", "d", "e"]),
    ({"age_min": 60}, ["a", "b", "d", "e"]),
    ({"age_min": 60, "age_max": 70}, ["b", "d"]),
    ({"grids": frozenset({"G2"})}, ["b"]),
    ({"stations": frozenset({"ST2"})}, ["d"]),
    ({"exposed_to": "fake_customer_service"}, ["c"]),  # b's contact is older than 72 h
    ({"exposed_to": "fake_customer_service", "exposed_within_ms": 5 * DAY_MS}, ["b", "c"]),
    ({"exposed_to": "romance", "age_min": 60}, ["a"]),
])
def test_audience(aim: dict, expected: list[str]) -> None:
    campaign = Campaign(fraud_type="fake_customer_service", ts=NOON, **aim)
    assert [s.subject_id for s in audience(campaign, reversed(PEOPLE), EXPOSED)] == expected


def test_age_is_counted_in_local_time() -> None:
    new_year_local = 1_767_196_800_000  # 2026-01-01 00:00 local, still 2025 in UTC
    assert age_at(1960, new_year_local) == 66 and age_at(1960, new_year_local - 1) == 65


def test_reminder_is_short_has_the_hotline_and_waits_out_quiet_hours() -> None:
    day = plan_reminder(Campaign(fraud_type="romance", ts=NOON), PEOPLE[0])
    assert day is not None and day.not_before_ts == NOON and day.kind == "reminder"
    assert "96110" in day.text and len(day.text) <= 70 and "王" not in day.text
    night = plan_reminder(Campaign(fraud_type="romance", ts=NOON + 11 * HOUR_MS), PEOPLE[0])  # 23:00
    assert night is not None and night.not_before_ts == NOON + 20 * HOUR_MS  # 08:00 the next morning
    assert night.expires_ts == night.not_before_ts + DAY_MS
    assert plan_reminder(Campaign(fraud_type="romance", ts=NOON), PEOPLE[4]) is None  # no line


def test_campaign_id_is_stable_for_the_same_aim_on_the_same_day() -> None:
    c = Campaign(fraud_type="romance", ts=NOON, age_min=60)
    assert c.campaign_id == replace(c, ts=NOON + 3 * HOUR_MS).campaign_id
    assert c.campaign_id != replace(c, ts=NOON + DAY_MS).campaign_id
    assert c.campaign_id != replace(c, age_min=65).campaign_id
    a, b = plan_reminder(c, PEOPLE[0]), plan_reminder(c, PEOPLE[1])
    assert a is not None and b is not None and a.message_id != b.message_id
    assert a.message_id == plan_reminder(replace(c, ts=NOON + HOUR_MS), PEOPLE[0]).message_id  # type: ignore[union-attr]


def test_rising_types() -> None:
    ex = [Exposure("x", "romance", NOON - HOUR_MS)] * 5 + [Exposure("x", "romance", NOON - 30 * HOUR_MS)] * 4 \
        + [Exposure("x", "fake_loan", NOON - 2 * HOUR_MS)] * 3
    assert rising_types(ex, NOON) == [("fake_loan", 3, 0), ("romance", 5, 4)]
