"""Planning a warning: steps due now by mode, stable ids, quiet hours, templates, unregistered recipients."""
from __future__ import annotations

import pytest

from dispatch.plan import not_before, plan_warning, recipient, sms_text, stop_payment
from dispatch.routing import ROUTES_FILE, RouteConfigError, load_routes, match_routes, parse_routes
from schemas.internal import Decision, DecisionReason, TransferRef
from schemas.records import FRAUD_TYPES, Subject
from schemas.units import HOUR_MS
from streams.person_state import episode_warning_id

T = 1_764_547_200_000  # 08:00 in the city (UTC+8)
ROUTES = load_routes()
WANG = Subject(subject_id="S1", phones=["+8613800000001"], accounts=["A1"], birth_year=1950, grid_id="G7",
               station_id="ST001", name_masked="王*", ts=T)


def dec(tier: str, ts: int = T, person: str = "S1", transfer: TransferRef | None = None) -> Decision:
    return Decision(decision_id=f"w-{tier}", person=person, subject_id=person if person == "S1" else None,
                    tier=tier, rose=True, fraud_type="romance", type_probability=0.5, score=0.3,  # type: ignore[arg-type]
                    reasons=[DecisionReason(code="X", detail="y")], evidence=["e"], ts=ts, episode_ts=ts,
                    model_version="m", policy_version="p", transfer=transfer)


def plan(d: Decision, profile: Subject | None = WANG):  # type: ignore[no-untyped-def]
    who = recipient(d, profile, ROUTES.default_station)
    route = match_routes(ROUTES, {"tier": d.tier, "fraud_type": d.fraud_type, "station": who.station_id})
    return plan_warning(d, route, who)


def test_t1_sends_phone_and_visit_at_once_t3_only_the_sms() -> None:
    p1, p3 = plan(dec("T1")), plan(dec("T3"))
    assert (len(p1.phone), len(p1.visit), len(p1.sms)) == (1, 1, 0)
    assert (len(p3.phone), len(p3.visit), len(p3.sms)) == (0, 0, 1)
    assert p1.phone[0].respond_by_ts == T + 5 * 60_000 and p1.visit[0].respond_by_ts == T + HOUR_MS
    assert p3.warning.channels == ["sms", "phone"] and p3.warning.respond_by_ts == T + 24 * HOUR_MS


def test_ids_are_stable_across_replanning() -> None:
    assert plan(dec("T3")).sms[0].message_id == plan(dec("T3")).sms[0].message_id
    assert plan(dec("T1")).phone[0].task_id != plan(dec("T1")).visit[0].task_id


@pytest.mark.parametrize(("local_hour", "wait_hours"), [(8, 0), (12, 0), (21, 0), (22, 10), (23, 9), (3, 5), (7, 1)])
def test_quiet_hours_hold_reminders_until_eight(local_hour: int, wait_hours: int) -> None:
    ts = T + ((local_hour - 8) % 24) * HOUR_MS
    assert not_before(ts, quiet=True) - ts == wait_hours * HOUR_MS
    assert not_before(ts, quiet=False) == ts


def test_every_fraud_type_has_a_short_text_with_the_hotline_and_no_personal_data() -> None:
    for fraud_type in FRAUD_TYPES:
        text = sms_text(fraud_type)
        assert "96110" in text and len(text) <= 70 and "王" not in text


def test_unregistered_line_gets_the_sms_at_the_city_desk_and_an_account_a_visit() -> None:
    line = plan(dec("T3", person="+8615000000001"), profile=None)
    assert line.sms[0].to == "+8615000000001" and line.warning.subject_id == "+8615000000001"
    account = plan(dec("T2", person="6217000000000001"), profile=None)
    assert account.phone == [] and [v.station_id for v in account.visit] == ["CITY-DESK", "CITY-DESK"]


def test_stop_payment_only_with_a_transfer() -> None:
    ref = TransferRef(transfer_id="TR", payer_account="A1", payee_account="M", amount_fen=5, ts=T)
    who = recipient(dec("T1"), WANG, ROUTES.default_station)
    assert stop_payment(dec("T1"), who, ROUTES.stop_payment) is None
    sp = stop_payment(dec("T1", transfer=ref), who, ROUTES.stop_payment)
    assert sp is not None and (sp.transfer_id, sp.amount_fen) == ("TR", 5) and sp.reason.startswith("T1 网络婚恋交友：")


def test_a_stop_payment_carries_what_a_bank_acts_on() -> None:
    ref = TransferRef(transfer_id="TR", payer_account="A1", payee_account="M", amount_fen=5, ts=T, payee_bank="ICBC",
                      payer_bank="BOC", case_refs=["case:2025-17"])
    rose = dec("T1", transfer=ref)
    who = recipient(rose, WANG, ROUTES.default_station)
    sp = stop_payment(rose, who, ROUTES.stop_payment)
    assert sp is not None
    assert (sp.warning_id, sp.payee_bank, sp.payer_bank, sp.station_id, sp.case_refs) == (
        "w-T1", "ICBC", "BOC", "ST001", ["case:2025-17"])
    assert sp.requesting_unit == "CITY-ANTIFRAUD-CENTER" and "反电信网络诈骗法" in (sp.legal_basis or "")
    assert sp.expires_ts == T + 48 * HOUR_MS
    # a later transfer of the same T1 episode: the same warning (the episode's), its own request id
    later_ref = TransferRef(transfer_id="TR2", payer_account="A1", payee_account="M", amount_fen=7, ts=T + HOUR_MS)
    later = Decision(**{**{f: getattr(rose, f) for f in rose.__struct_fields__}, "decision_id": "stop-TR2",
                        "rose": False, "transfer": later_ref})
    sp2 = stop_payment(later, who, ROUTES.stop_payment)
    assert sp2 is not None and sp2.request_id != sp.request_id
    assert sp2.request_id == stop_payment(later, who, ROUTES.stop_payment).request_id  # asked again: one request
    assert sp2.warning_id == episode_warning_id("S1", T, "T1")


@pytest.mark.parametrize(("section", "error"), [
    ("[stop_payment]\nhold_hours = 0", "hold_hours"),
    ("[stop_payment]\nlegal_basis = ''", "may not be empty"),
    ("[stop_payment]\nbasis = 'x'", "unknown keys"),
])
def test_stop_payment_terms_are_checked_at_load(section: str, error: str) -> None:
    text = ROUTES_FILE.read_text()
    head, _, rest = text.partition("[stop_payment]")
    rest = rest[rest.index("[[route]]"):]
    assert parse_routes(head + rest).stop_payment == ROUTES.stop_payment  # the section is optional
    with pytest.raises(RouteConfigError, match=error):
        parse_routes(head + section + "\n\n" + rest)
