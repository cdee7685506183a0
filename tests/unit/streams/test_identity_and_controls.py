"""Identity resolution from the registry, multi-card control of a registered owner, domain and number blocks."""
from __future__ import annotations

from schemas.records import Indicator, Subject
from streams.controls import (
    account_controls,
    control_events,
    indicator_value_key,
    interceptions_for,
)
from streams.identity import (
    decode_profile,
    identity_changes,
    resolve_account,
    resolve_line,
    subject_key,
)
from streams.ingest import person_events
from tests.unit.streams.test_person_state import T0, call, pay

WANG = Subject(subject_id="S1", phones=["+8613800138000", "+8613900139000"], accounts=["A1", "A2", "A3"],
               birth_year=1950, grid_id="G1", station_id="ST1", name_masked="王*", ts=T0)


def table(subject: Subject = WANG) -> dict[str, str]:
    to_set, _ = identity_changes(None, subject)
    return to_set


def test_registry_maps_every_line_and_account_to_the_person() -> None:
    t = table()
    assert {k for k, v in t.items() if v == "S1"} == {"phone:+8613800138000", "phone:+8613900139000",
                                                      "account:A1", "account:A2", "account:A3"}
    assert decode_profile(t[subject_key("S1")]) == WANG


def test_a_line_given_up_no_longer_resolves() -> None:
    new = Subject(**{**{f: getattr(WANG, f) for f in WANG.__struct_fields__}, "phones": ["+8613800138000"]})
    _, gone = identity_changes(WANG, new)
    assert gone == ["phone:+8613900139000"]


def test_two_lines_of_one_person_resolve_to_one_key_and_strangers_to_their_line() -> None:
    t = table()
    assert resolve_line(t.get, "+8613900139000") == ("S1", "S1")
    assert resolve_line(t.get, "+8613700000000") == ("+8613700000000", None)
    assert resolve_account(t.get, "ZZ", phone="+8613800138000") == ("S1", "S1")
    assert resolve_account(t.get, "ZZ") == ("ZZ", None)


def test_signals_are_keyed_by_person_and_incoming_transfers_count_for_the_payee() -> None:
    t = table()
    # A1 -> A2 are both Wang's accounts: one person, counted once, as the payer
    assert [(e.person, e.role) for e in person_events(pay(0, "A2").payment, t.get)] == [("S1", "self")]
    # to a stranger's account: the payer is Wang, the payee is keyed by the account
    assert [(e.person, e.role) for e in person_events(pay(0, "X9").payment, t.get)] == [("S1", "self"),
                                                                                          ("X9", "payee")]
    events = person_events(call(0, "+8617000001111").telecom, t.get)
    assert [(e.person, e.subject_id) for e in events] == [("S1", "S1")]


def test_value_keys_of_indicators() -> None:
    ind = Indicator(type="url", value="fake.cn", action="add", fraud_type="romance", confidence=1, source="c", ts=T0)
    assert indicator_value_key(ind) == "domain:fake.cn"


def test_one_card_in_a_case_controls_all_of_the_owners_accounts() -> None:
    ind = Indicator(type="account", value="A2", action="add", fraud_type="rebate_task", confidence=1,
                    source="case-9", ts=T0)
    controls = account_controls(ind, WANG)
    assert [c.account for c in controls] == ["A1", "A2", "A3"]
    assert all(c.subject_id == "S1" and c.source == "case-9" and "一人多卡" in c.reason for c in controls)
    ev, = control_events(ind, WANG)
    assert ev.person == "S1" and ev.control is not None and ev.control.account == "A2"


def case_element(kind: str, value: str, confidence: float = 0.9, action: str = "add", ts: int = T0) -> Indicator:
    return Indicator(type=kind, value=value, action=action, fraud_type="fake_customer_service",  # type: ignore[arg-type]
                     confidence=confidence, source="case-1", ts=ts, expires_ts=ts + 10 if action == "add" else None)


def test_what_each_indicator_asks_for() -> None:
    (dom,) = interceptions_for(case_element("domain", "refund-1.top"))
    assert (dom.domain, dom.expires_ts, dom.source) == ("refund-1.top", T0 + 10, "case-1")
    assert interceptions_for(case_element("domain", "maybe.top", confidence=0.5)) == []
    assert [n.action for n in interceptions_for(case_element("phone", "+8617000001111"))] == ["block"]
    assert [n.action for n in interceptions_for(case_element("phone", "4000000001", confidence=0.5))] == ["flag"]
    (gone,) = interceptions_for(case_element("phone", "+8617000001111", action="retract", ts=T0 + 5))
    assert gone.expires_ts == T0 + 5 and gone.reason.startswith("retracted")
    assert interceptions_for(case_element("account", "6217000000000001")) == []

