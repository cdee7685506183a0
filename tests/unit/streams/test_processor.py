"""The stages over their tables: states and heads kept as objects, the same read back, written back on a failure."""
from __future__ import annotations

from typing import Any

import pytest

from schemas.internal import Contact, ValueMessage
from schemas.records import Indicator
from schemas.units import HOUR_MS
from streams import processor as processor_module
from streams.person_state import PersonState, StatePolicy, Update
from streams.processor import Processor
from streams.value_index import IndexPolicy, ValueHead, encode_stored
from tests.unit.streams.test_person_state import call

T0 = 1_764_547_200_000
KEY = "phone:+8617000001111"


def _processor(values: dict[bytes, Any]) -> Processor:
    return Processor(identity={}, persons={}, values=values, index_policy=IndexPolicy(), state_policy=StatePolicy())


def _contact(person: str, hours: float) -> ValueMessage:
    return ValueMessage(value_key=KEY, contact=Contact(value_key=KEY, person=person, ts=T0 + int(hours * HOUR_MS),
                                                       event_id=f"{person}-{hours}"))


def _indicator(hours: float, action: str = "add") -> ValueMessage:
    ind = Indicator(type="phone", value=KEY.split(":", 1)[1], action=action, fraud_type="romance", confidence=0.9,
                    source="case-1", ts=T0 + int(hours * HOUR_MS))
    return ValueMessage(value_key=KEY, indicator=ind)


def test_a_value_read_back_from_its_changelog_goes_on_as_the_worker_that_wrote_it() -> None:
    written = _processor({})
    for message in [_contact("a", 0), _contact("b", 1), _contact("a", 2), _indicator(3)]:
        written.value_message(message)
    assert isinstance(written.values[KEY.encode()], ValueHead)
    assert isinstance(written.values[f"{KEY}\x1fa".encode()], bytes)  # an entry: five times smaller so
    read_back = _processor({k: encode_stored(v) for k, v in written.values.items()})  # as a restore gives it
    for message in [_contact("c", 4), _contact("b", 5), _indicator(6, "retract"), _contact("d", 30)]:
        assert read_back.value_message(message) == written.value_message(message)
    assert ({k: encode_stored(v) for k, v in read_back.values.items()}
            == {k: encode_stored(v) for k, v in written.values.items()})
    assert isinstance(read_back.values[KEY.encode()], ValueHead)  # written since: an object again


class _Recording(dict):
    """A table that remembers which keys were written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.written.append(key)
        super().__setitem__(key, value)


def test_a_head_changed_in_place_before_a_failure_is_written_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table holds the head itself: what the stage changed before it failed must reach the changelog too,
    or a worker restarted from it would hold another index than the one that ran on."""
    table = _Recording()
    p = _processor(table)
    p.value_message(_contact("a", 0))
    table.written.clear()

    def failing(head: ValueHead, *_: object, **__: object) -> None:
        head.watermark += HOUR_MS
        raise RuntimeError("a bug in the index")

    monkeypatch.setattr(processor_module, "add_contact", failing)
    with pytest.raises(RuntimeError):
        p.value_message(_contact("b", 1))
    assert table.written == [KEY.encode()]


def test_a_state_changed_in_place_before_a_failure_is_written_back() -> None:
    """A late event is folded, then decided at once; when the decision fails, the fold has already changed the
    state the table holds, and the changelog must get it too."""
    failing = []

    def decide(state: PersonState, pe: object, update: Update) -> list:
        if failing:
            raise RuntimeError("a bug in the scorer")
        return []

    persons = _Recording()
    p = Processor(identity={}, persons=persons, values={}, index_policy=IndexPolicy(), state_policy=StatePolicy(),
                  on_person=decide)
    p.person_event(call(1, "+8617000000001", 1))
    p.frontier("yujing.events", 0).decided = 2**62  # every event from now on is late: decided on arrival
    persons.written.clear()
    failing.append(True)
    with pytest.raises(RuntimeError):
        p.person_event(call(2, "+8617000000002", 2))
    assert persons.written == [b"S1"] and len(persons[b"S1"].calls) == 2
