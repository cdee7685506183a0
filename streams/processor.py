"""What each agent does to one message, with tables as mappings and outputs returned, not sent.

The Faust app (`streams/app.py`) sends the outputs to Kafka; the local runner (`streams/local.py`) queues
them in memory to replay a simulated city through exactly the same logic (training, evaluation, benches).
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Callable, NamedTuple

import msgspec

from schemas.internal import PersonEvent, ValueMessage
from dispatch.interceptions import interceptions_for
from schemas.records import DomainInterception, Indicator, Subject
from streams.controls import account_controls, control_events, indicator_value_key
from streams.identity import decode_profile, identity_changes, subject_key
from streams.ingest import resolve_late
from streams.person_state import PersonState, StatePolicy, Update, apply_event, decode_state, encode_state, new_state
from streams.table_views import ValueEntries
from streams.value_index import IndexPolicy, ValueHead, add_contact, apply_indicator, decode_head, encode_head

Table = MutableMapping[bytes, bytes]


class Output(NamedTuple):
    """One message to send: logical topic, key, record."""

    topic: str
    key: bytes
    value: msgspec.Struct


# Called after an event was folded into a person's state, with what it produced; returns more outputs
# (decisions) and may change the state (setting update.changed).
PersonHook = Callable[[PersonState, PersonEvent, Update], list[Output]]


def person_output(pe: PersonEvent) -> Output:
    """A person event, keyed by person, for `yujing.events`."""
    return Output("yujing.events", pe.person.encode(), pe)


@dataclass
class Processor:
    """The per-message logic of every agent, over the tables it is handed."""

    identity: Table
    persons: Table
    values: Table
    index_policy: IndexPolicy
    state_policy: StatePolicy
    on_person: PersonHook | None = None

    def lookup(self, key: str) -> str | None:
        """Identity lookup: `phone:…` / `account:…` → subject id, `subject:…` → profile JSON."""
        raw = self.identity.get(key.encode())
        return raw.decode() if raw is not None else None

    def subject(self, subject: Subject) -> list[Output]:
        """A registry record: update line → person, account → person and the profile."""
        old = decode_profile(self.lookup(subject_key(subject.subject_id)))
        to_set, to_delete = identity_changes(old, subject)
        for key in to_delete:
            self.identity.pop(key.encode(), None)
        for key, value in to_set.items():
            self.identity[key.encode()] = value.encode()
        return []

    def indicator(self, indicator: Indicator) -> list[Output]:
        """An indicator change: to the value's owner; one card of a registered person puts all under control."""
        value_key = indicator_value_key(indicator)
        out = [Output("yujing.contacts", value_key.encode(), ValueMessage(value_key=value_key, indicator=indicator))]
        for block in interceptions_for(indicator):
            if isinstance(block, DomainInterception):
                out.append(Output("interception.domain", block.domain.encode(), block))
            else:
                out.append(Output("interception.number", block.number.encode(), block))
        if indicator.type == "account" and indicator.action == "add":
            owner = self.lookup(f"account:{indicator.value}")
            profile = decode_profile(self.lookup(subject_key(owner))) if owner else None
            if profile is not None:
                out += [Output("interception.account", c.account.encode(), c)
                        for c in account_controls(indicator, profile)]
                out += [person_output(pe) for pe in control_events(indicator, profile)]
        return out

    def person_event(self, pe: PersonEvent) -> list[Output]:
        """Fold an event into the person's state; index its contacts, trigger, and let the hook score."""
        late = resolve_late(pe, self.lookup)
        if late is not None:  # registered since ingest looked: to the person's own partition instead
            return [person_output(late)]
        key = pe.person.encode()
        raw = self.persons.get(key)
        state = decode_state(raw) if raw else new_state(pe.person, pe.subject_id)
        update = apply_event(state, pe, self.state_policy)
        out = [Output("yujing.contacts", c.value_key.encode(), ValueMessage(value_key=c.value_key, contact=c))
               for c in update.contacts]
        out += [Output("yujing.triggers", t.person.encode(), t) for t in update.triggers]
        if self.on_person is not None and not update.late:
            out += self.on_person(state, pe, update)  # the scorer may change the state too (the tier)
        if update.changed:  # an event that changes nothing writes nothing (docs/sizing.md)
            self.persons[key] = encode_state(state)
        return out

    def value_message(self, vm: ValueMessage) -> list[Output]:
        """A contact or indicator change for one value: index it, match it, mine backwards."""
        key = vm.value_key.encode()
        raw = self.values.get(key)
        head = decode_head(raw) if raw else ValueHead()
        entries = ValueEntries(self.values, vm.value_key)
        if vm.indicator is not None:
            update = apply_indicator(head, entries, vm.value_key, vm.indicator, self.index_policy)
        elif vm.contact is not None:
            update = add_contact(head, entries, vm.contact, self.index_policy,
                                 track_fanout=vm.value_key.startswith("phone:"))
        else:
            return []
        if update.head_changed:
            self.values[key] = encode_head(head)
        return [person_output(PersonEvent(person=person, source="hit", hit=hit)) for person, hit in update.hits]
