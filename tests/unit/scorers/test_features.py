"""Victim features: each one reads the facts it names, inside its window, and nothing else."""
from __future__ import annotations

import math

from schemas.units import DAY_MS, HOUR_MS
from scorers.features import FEATURES, Snapshot, features
from scorers.fraud_types import TYPE_FEATURES, type_features
from streams.person_state import CallFact, HitFact, PaymentFact, PersonState, WebFact

NOW = 1_764_547_200_000 + 10 * DAY_MS


def call(ago: int, duration: int = 1800, tags: list[str] | None = None, first: bool = True, number: str = "+8617000001111",
         kind: str = "call", domains: list[str] | None = None) -> CallFact:
    return CallFact(NOW - ago, kind, "in", number, "mobile_cn", duration, tags or [], first, domains or [], f"c{ago}")


def pay(ago: int, amount: int, first: bool = True, direction: str = "out", status: str = "initiated") -> PaymentFact:
    return PaymentFact(NOW - ago, f"t{ago}", status, direction, "M1", amount, first, "mobile", f"p{ago}")


def f(state: PersonState, age: int | None = None) -> dict[str, float]:
    return dict(zip(FEATURES, features(Snapshot(state, NOW, age))))


def test_nothing_known_is_all_zero() -> None:
    assert set(f(PersonState(person="x")).values()) == {0.0}


def test_contact_then_pay_is_the_refund_script() -> None:
    state = PersonState(person="x", calls=[call(2 * HOUR_MS, 2700, ["virtual_operator"])], payments=[pay(HOUR_MS, 500_000)])
    x = f(state, age=67)
    assert x["suspect_call_24h"] == 1 and x["long_unknown_call_24h"] == 1 and x["very_long_call_24h"] == 1
    assert x["log_longest_unknown_call_s_24h"] == math.log1p(2700)
    assert x["first_payee_out_24h"] == 1 and x["contact_then_pay_6h"] == 1 and x["elderly"] == 1
    assert x["log_first_payee_amount_24h"] == math.log1p(5000)


def test_windows_hold() -> None:
    state = PersonState(person="x", calls=[call(25 * HOUR_MS, 2700, ["voip"])], payments=[pay(HOUR_MS, 500_000)],
                        hits=[HitFact(NOW - 80 * HOUR_MS, NOW - 90 * HOUR_MS, "phone:1", "romance", 0.9, "reverse", 0, "s",
                                      0, "e")])
    x = f(state)
    assert x["suspect_call_24h"] == 0 and x["hit_strong_72h"] == 0
    assert x["contact_then_pay_6h"] == 0  # the call was a day before


def test_known_caller_and_known_payee_are_not_suspect() -> None:
    state = PersonState(person="x", calls=[call(HOUR_MS, 3000, first=False)], payments=[pay(HOUR_MS, 500_000, first=False)])
    x = f(state)
    assert x["long_unknown_call_24h"] == 0 and x["first_payee_out_24h"] == 0 and x["log_out_amount_24h"] > 0


def test_rebates_grooming_and_installs() -> None:
    state = PersonState(person="x", calls=[call(50 * HOUR_MS, 300, ["international"]), call(26 * HOUR_MS, 300, first=False),
                                           call(HOUR_MS, 300, first=False)],
                        payments=[pay(HOUR_MS, 3_000, direction="in"), pay(2 * HOUR_MS, 2_000, direction="in")],
                        web=[WebFact(NOW - HOUR_MS, "app_install", "us.zoom.videomeetings", True, "w1"),
                             WebFact(NOW - HOUR_MS, "http", "refund.top", True, "w2")])
    x = f(state, age=25)
    assert x["grooming_days_72h"] == 3 and x["small_in_unknown_24h"] == 2
    assert x["remote_app_install_24h"] == 1 and x["app_install_24h"] == 1 and x["new_domain_visit_24h"] == 1
    assert x["young"] == 1


def _case_hit(ago: int, end_in: int | None, value_key: str = "phone:1") -> HitFact:
    """A hit known `ago` ms before NOW whose indicator ends `end_in` ms after NOW (None: open)."""
    return HitFact(NOW - ago, NOW - ago - HOUR_MS, value_key, "romance", 0.9, "reverse", NOW - ago, "s", 0, "e",
                   None if end_in is None else NOW + end_in)


def test_a_hit_counts_until_its_indicator_is_retracted() -> None:
    def counted(end_in: int | None) -> tuple[float, float]:
        state = PersonState(person="x", hits=[_case_hit(HOUR_MS, end_in)])
        x = dict(zip(TYPE_FEATURES, type_features(features(Snapshot(state, NOW)), state, NOW)))
        return x["hit_strong_72h"], x["hit_type_romance"]

    assert counted(None) == (1, 0.9) and counted(1) == (1, 0.9)  # open, or retracted after this moment
    assert counted(0) == (0, 0) and counted(-HOUR_MS // 2) == (0, 0)  # retracted at or before it
