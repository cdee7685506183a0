"""Every contract record survives encode → decode unchanged, and unknown fields are ignored."""
from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import records as r
from schemas.decode import INPUT_TYPES, decode_raw
from tests.strategies import records

ALL_RECORDS = [r.TelecomSignal, r.PaymentSignal, r.DomainSignal, r.Indicator, r.Subject, r.FraudWarning, r.SmsTask,
               r.PhoneTask, r.VisitTask, r.PaymentInterception, r.AccountInterception, r.DomainInterception,
               r.NumberInterception, r.Outcome, r.DeadLetter]


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(cls: type[msgspec.Struct], data: st.DataObject) -> None:
    record = data.draw(records(cls))
    assert msgspec.json.decode(r.encode(record), type=cls) == record


@pytest.mark.parametrize("topic", sorted(INPUT_TYPES))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), extra=st.dictionaries(st.text(min_size=1, max_size=8).map(lambda k: "x_" + k),
                                             st.integers() | st.text(max_size=8), max_size=3))
def test_unknown_fields_are_ignored(topic: str, data: st.DataObject, extra: dict[str, object]) -> None:
    record = data.draw(records(INPUT_TYPES[topic]))
    doc = {**msgspec.to_builtins(record), **extra}
    assert decode_raw(topic, msgspec.json.encode(doc)) == record


def test_fraud_types_are_the_contracts() -> None:
    assert set(r.FRAUD_TYPES) == {
        "rebate_task", "fake_investment", "fake_loan", "fake_customer_service", "impersonate_authority",
        "impersonate_acquaintance", "romance", "game_trade", "fake_credit_repair", "unknown"}
