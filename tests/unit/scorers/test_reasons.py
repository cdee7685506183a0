"""Reason codes: the words an operator reads, built from the facts behind the features that pushed the score (in
English here, where the wording is checked; Chinese, the default, told from the same facts at the end)."""
from __future__ import annotations

import re

import pytest

from schemas.units import HOUR_MS
from scorers.features import FEATURES, Snapshot
from scorers.reasons import reasons
from streams.person_state import HitFact, PersonState, WebFact
from tests.unit.scorers.test_features import NOW, call, pay


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUJING_LANG", "en")


def _push(*names: str) -> list[float]:
    return [1.0 if n in names else 0.0 for n in FEATURES]


def test_a_script_then_a_first_transfer_is_told_as_one_story() -> None:
    state = PersonState(person="x", calls=[call(40 * 60_000, 1380, ["virtual_operator"], number="+8617000001111")],
                        web=[WebFact(NOW - 30 * 60_000, "app_install", "com.tencent.wemeet.app", True, "w1")],
                        payments=[pay(5 * 60_000, 1_250_000)])
    (r, *_) = reasons(Snapshot(state, NOW, 71), _push("pay_after_script_12h"))
    assert r.code == "SCRIPT_THEN_FIRST_TRANSFER"
    assert r.detail == ("a first transfer of ¥12,500 to a new payee 35 min after a long call (**********1111), "
                        "then an app installed on the call or after the link (**********1111)")


def test_strongest_contributions_first_and_no_duplicates() -> None:
    state = PersonState(person="x", calls=[call(HOUR_MS, 3000, ["voip"])],
                        web=[WebFact(NOW - HOUR_MS + 60_000, "app_install", "us.zoom.videomeetings", True, "w")],
                        hits=[HitFact(NOW - 2 * HOUR_MS, NOW - 30 * HOUR_MS, "phone:+8617000001111", "impersonate_authority",
                                      0.95, "reverse", NOW - 2 * HOUR_MS, "case-7", 0, "c1")])
    contrib = [0.0] * len(FEATURES)
    for name, c in (("hit_strong_72h", 3.0), ("remote_app_install_24h", 2.0), ("very_long_in_call_24h", 1.0),
                    ("log_longest_in_call_s_24h", 0.5), ("link_followed_12h", -1.0)):
        contrib[FEATURES.index(name)] = c
    got = reasons(Snapshot(state, NOW, 70), contrib)
    assert [r.code for r in got] == ["CASE_ELEMENT_CONTACT", "REMOTE_APP_INSTALL", "VERY_LONG_CALL"]
    assert got[0].detail == ("contact with phone **********1111 named in case-7 (impersonating police or officials), "
                             "28 h before it was known")
    assert got[1].detail == "installed us.zoom.videomeetings (remote meeting or screen sharing)"
    assert got[2].detail == "50 min call from a VoIP number **********1111 never in contact before"


def test_transfer_to_a_case_account_always_comes_first() -> None:
    state = PersonState(person="x", payments=[pay(60_000, 500_000)])
    got = reasons(Snapshot(state, NOW), [0.0] * len(FEATURES), payee_flagged=True)
    assert got[0].code == "TRANSFER_TO_CASE_ACCOUNT" and "**" in got[0].detail and "M1" not in got[0].detail


def test_a_decision_always_has_a_reason_when_facts_exist() -> None:
    state = PersonState(person="x", payments=[pay(60_000, 500_000)])
    assert [r.code for r in reasons(Snapshot(state, NOW), [0.0] * len(FEATURES))] == ["FIRST_TRANSFER_NEW_PAYEE"]


def test_a_retracted_case_element_is_no_reason() -> None:
    hit = HitFact(NOW - 2 * HOUR_MS, NOW - 30 * HOUR_MS, "phone:+8617000001111", "impersonate_authority", 0.95,
                  "reverse", NOW - 2 * HOUR_MS, "case-7", 0, "c1", NOW - HOUR_MS)  # retracted an hour ago
    state = PersonState(person="x", hits=[hit], calls=[call(HOUR_MS, 3000, ["voip"])])
    codes = [r.code for r in reasons(Snapshot(state, NOW, 70), _push("hit_strong_72h", "very_long_in_call_24h"))]
    assert codes == ["VERY_LONG_CALL"]
    assert [r.code for r in reasons(Snapshot(state, NOW - HOUR_MS - 1, 70), _push("hit_strong_72h"))] == [
        "CASE_ELEMENT_CONTACT"]  # just before the retraction it still was one


def test_the_case_element_told_is_the_same_whichever_hit_arrived_first() -> None:
    # two elements of one case made known at once: the same moment, the same confidence
    phone = HitFact(NOW - 2 * HOUR_MS, NOW - 4 * HOUR_MS, "phone:+8617000001111", "fake_loan", 0.9, "reverse",
                    NOW - 2 * HOUR_MS, "case-7", 0, "c1")
    app = HitFact(NOW - 2 * HOUR_MS, NOW - 3 * HOUR_MS, "app:com.fake.helper", "fake_loan", 0.9, "reverse",
                  NOW - 2 * HOUR_MS, "case-7", 0, "w1")
    told = {reasons(Snapshot(PersonState(person="x", hits=hits), NOW), _push("hit_strong_72h"))[0].detail
            for hits in ([phone, app], [app, phone])}
    assert told == {"contact with phone **********1111 named in case-7 (fake loan), 2 h before it was known"}


def test_no_reason_names_a_whole_number_or_account() -> None:
    """Reasons reach the console, explain and interception requests: every feature's words are checked."""
    state = PersonState(person="x", calls=[call(40 * 60_000, 1380, ["virtual_operator"], number="+8617000001111")],
                        web=[WebFact(NOW - 30 * 60_000, "app_install", "com.tencent.wemeet.app", True, "w1")],
                        payments=[pay(5 * 60_000, 1_250_000)],
                        hits=[HitFact(NOW - 2 * HOUR_MS, NOW - 30 * HOUR_MS, "account:6217999900001111", "fake_loan",
                                      0.95, "reverse", NOW - 2 * HOUR_MS, "case-7", 0, "c1"),
                              HitFact(NOW - HOUR_MS, NOW - HOUR_MS, "phone:+8617000002222", "fake_loan", 0.5,
                                      "fanout", NOW - HOUR_MS, "fanout", 40, "c2")])
    told = [r.detail for name in FEATURES for r in reasons(Snapshot(state, NOW, 70), _push(name), payee_flagged=True)]
    assert len(set(told)) >= 5
    assert not [d for d in told if re.search(r"\d{5,}", d)], told


def test_chinese_by_default_from_the_same_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUJING_LANG")
    state = PersonState(person="x", calls=[call(40 * 60_000, 1380, ["virtual_operator"], number="+8617000001111")],
                        web=[WebFact(NOW - 30 * 60_000, "app_install", "com.tencent.wemeet.app", True, "w1")],
                        payments=[pay(5 * 60_000, 1_250_000)])
    (r, *_) = reasons(Snapshot(state, NOW, 71), _push("pay_after_script_12h"))
    assert r.detail == ("长时间通话（**********1111），随后通话中或点击链接后安装了应用（**********1111）之后 35 分钟，"
                        "首次向新收款人转账 ¥12,500")
