"""Victim features: each one reads the facts it names, inside its window, and nothing else."""
from __future__ import annotations

import math

from schemas.units import DAY_MS, HOUR_MS
from scorers.features import FEATURES, Snapshot, features
from scorers.fraud_types import TYPE_FEATURES, type_features
from streams.person_state import CallFact, HitFact, PaymentFact, PersonState, WebFact

NOW = 1_764_547_200_000 + 10 * DAY_MS
MIN = 60_000


def call(ago: int, duration: int = 1800, tags: list[str] | None = None, first: bool = True, number: str = "+8617000001111",
         kind: str = "call", domains: list[str] | None = None) -> CallFact:
    return CallFact(NOW - ago, kind, "in", number, "mobile_cn", duration, tags or [], first, domains or [], f"c{ago}")


def pay(ago: int, amount: int, first: bool = True, direction: str = "out", status: str = "initiated") -> PaymentFact:
    return PaymentFact(NOW - ago, f"t{ago}", status, direction, "M1", amount, first, "mobile", f"p{ago}")


def f(state: PersonState, age: int | None = None) -> dict[str, float]:
    return dict(zip(FEATURES, features(Snapshot(state, NOW, age))))


def test_nothing_known_is_all_zero() -> None:
    assert set(f(PersonState(person="x")).values()) == {0.0}


def web(ago: int, kind: str, target: str, first: bool = True) -> WebFact:
    return WebFact(NOW - ago, kind, target, first, f"w{ago}")


def test_a_refund_script_is_seen_stage_by_stage_and_the_transfer_after_it() -> None:
    """A 45-minute call from a virtual-operator number, its SMS link followed, a meeting app installed on the call,
    then a first transfer: each stage, the session they share, and the money after it."""
    state = PersonState(person="x", calls=[call(2 * HOUR_MS, 2700, ["virtual_operator"]),
                                           call(2 * HOUR_MS - 10 * MIN, 0, ["virtual_operator"], number="+8617000002222",
                                                kind="sms", domains=["refund.top"])],
                        web=[web(2 * HOUR_MS - 15 * MIN, "http", "refund.top"),
                             web(2 * HOUR_MS - 25 * MIN, "app_install", "com.tencent.wemeet.app")],
                        payments=[pay(HOUR_MS, 500_000)])
    x = f(state, age=67)
    assert x["long_talk_12h"] == x["link_followed_12h"] == x["steered_install_12h"] == 1 and x["rebate_12h"] == 0
    assert x["script_stages_12h"] == 3 and x["script_stages_3plus"] == 1
    assert x["session_talk_install"] == x["session_talk_link"] == x["session_link_install"] == 1
    assert x["very_long_in_call_24h"] == 1 and x["log_longest_in_call_s_24h"] == math.log1p(2700)
    assert x["first_payee_out_24h"] == 1 and x["pay_after_script_12h"] == 1 and x["elderly"] == 1
    assert x["log_first_payee_amount_24h"] == math.log1p(5000) and x["remote_app_install_24h"] == 1


def test_stages_apart_are_no_script() -> None:
    """The same stages spread over a day: each is ordinary life, none shares a session with another."""
    state = PersonState(person="x", calls=[call(11 * HOUR_MS, 2700)],
                        web=[web(2 * HOUR_MS, "app_install", "com.tencent.wemeet.app")], payments=[pay(HOUR_MS, 500_000)])
    x = f(state)
    assert x["long_talk_12h"] == 1 and x["steered_install_12h"] == 0  # installed long after the call ended
    assert x["script_stages_12h"] == 1 and x["pay_after_script_12h"] == 0


def test_windows_hold() -> None:
    state = PersonState(person="x", calls=[call(25 * HOUR_MS, 2700, ["voip"])], payments=[pay(HOUR_MS, 500_000)],
                        hits=[HitFact(NOW - 80 * HOUR_MS, NOW - 90 * HOUR_MS, "phone:1", "romance", 0.9, "reverse", 0,
                                      "s", 0, "e")])
    x = f(state)
    assert x["new_tagged_contact_24h"] == 0 and x["hit_strong_72h"] == 0 and x["long_talk_12h"] == 0


def test_service_lines_steer_nobody_and_a_known_payee_is_no_first_payee() -> None:
    bank = CallFact(NOW - HOUR_MS, "call", "in", "95588", "service", 1800, [], True, [], "c-bank")
    state = PersonState(person="x", calls=[bank], web=[web(HOUR_MS - 10 * MIN, "app_install", "com.bank.app")],
                        payments=[pay(HOUR_MS, 500_000, first=False)])
    x = f(state)
    assert x["long_talk_12h"] == x["steered_install_12h"] == 0 and x["log_longest_in_call_s_24h"] == 0
    assert x["first_payee_out_24h"] == 0


def test_rebates_count_only_after_a_link_or_an_install() -> None:
    ins = [pay(HOUR_MS, 3_000, direction="in"), pay(2 * HOUR_MS, 2_000, direction="in")]
    alone = f(PersonState(person="x", payments=ins), age=25)
    assert alone["rebate_12h"] == 0 and alone["small_in_unknown_24h"] == 2 and alone["young"] == 1
    sms = call(4 * HOUR_MS, 0, number="+8616500001111", kind="sms", domains=["task.vip"])
    steered = f(PersonState(person="x", calls=[sms], web=[web(4 * HOUR_MS - 5 * MIN, "http", "task.vip"),
                                                         web(4 * HOUR_MS - 20 * MIN, "app_install", "com.task.helper")],
                            payments=ins))
    assert steered["link_followed_12h"] == steered["steered_install_12h"] == steered["rebate_12h"] == 1
    assert steered["session_link_install"] == 1 and steered["script_stages_12h"] == 2


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
