"""The Faust app: thin agents that decode, call the pure stages, and send.

    signals.*          --ingest-->    yujing.events (key: person)      identity resolved via the registry
    registry.subjects  --registry-->  identity (global table)
    intel.indicators   --indicators-> yujing.contacts (key: value)     + interception.account (multi-card control)
    yujing.events      --persons-->   persons table; yujing.contacts; yujing.triggers
    yujing.contacts    --values-->    values table (contact index + indicator); hits -> yujing.events
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import faust
from faust.types import EventT
import msgspec

from deploy.config import SIGNAL_TOPICS, Settings
from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_input
from schemas.internal import PersonEvent, ValueMessage
from schemas.records import Indicator, Subject, encode
from streams.controls import account_controls, control_events, indicator_value_key
from streams.identity import decode_profile, identity_changes, subject_key
from streams.ingest import RawMessage, ingest
from streams.person_state import StatePolicy, apply_event, decode_state, encode_state, new_state
from streams.table_views import ValueEntries
from streams.value_index import IndexPolicy, ValueHead, add_contact, apply_indicator, decode_head, encode_head

log = logging.getLogger(__name__)

Handler = Callable[[EventT], Awaitable[None]]
RAW = {"key_serializer": "raw", "value_serializer": "raw"}
_person_decoder = msgspec.json.Decoder(PersonEvent)
_value_msg_decoder = msgspec.json.Decoder(ValueMessage)


def policies(settings: Settings) -> tuple[IndexPolicy, StatePolicy]:
    """The index and state policies the settings ask for."""
    hour = 3_600_000
    index = IndexPolicy(lookback_ms=settings.lookback_hours * hour,
                        late_tolerance_ms=settings.late_tolerance_minutes * 60_000,
                        max_people=settings.index_max_people, fanout_threshold=settings.fanout_threshold)
    return index, StatePolicy(window_ms=settings.lookback_hours * hour)


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the settings' broker, data folder and topics, with every agent registered."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        store="rocksdb://",
        datadir=str(settings.data_dir / "faust"),
        web_bind="127.0.0.1",
        web_port=settings.web_port,
        web_host="127.0.0.1",
        topic_partitions=settings.partitions,
        producer_acks=-1,  # acks=all: an effect is not sent until the broker has it
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        # A worker that dies (SIGKILL, lost machine) gives its partitions to the others after 10 s, not 60.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )
    topic = {name: app.topic(settings.topic(name), **RAW) for name in (
        "deadletter", "yujing.events", "yujing.contacts", "yujing.triggers", "interception.account")}
    # Tables hold bytes under bytes keys (faust then stores both raw); values are msgspec-encoded records.
    raw_table = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
    identity = app.GlobalTable("identity", **raw_table)
    persons = app.Table("persons", **raw_table)
    values = app.Table("values", **raw_table)
    index_policy, state_policy = policies(settings)

    def lookup(key: str) -> str | None:
        raw = identity.get(key.encode())
        return raw.decode() if raw is not None else None

    def guarded(logical: str, handler: Handler) -> Callable[[Any], Any]:
        """Run `handler` on every event; any failure dead-letters that event and the stream goes on."""
        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                msg = event.message
                try:
                    await handler(event)
                except InvalidRecord as exc:
                    await _dead(logical, event, exc.reason, exc.field)
                except Exception as exc:  # a bug on one record must not stop the stream
                    log.exception("%s failed on partition %s offset %s", logical, msg.partition, msg.offset)
                    await _dead(logical, event, f"internal error: {type(exc).__name__}: {exc}"[:500])
        agent.__name__ = logical.replace(".", "_")
        return agent

    async def _dead(logical: str, event: EventT, reason: str, field: str | None = None) -> None:
        msg = event.message
        kafka_ts = int(msg.timestamp * 1000) if msg.timestamp else None
        record = dead_letter(logical, msg.partition, msg.offset, event.key, event.value, reason, field, kafka_ts)
        await topic["deadletter"].send(key=event.key, value=encode(record))

    async def send_person_event(pe: PersonEvent) -> None:
        await topic["yujing.events"].send(key=pe.person.encode(), value=encode(pe))

    # -- signals: validate, resolve the person, re-key by person
    for logical in SIGNAL_TOPICS:
        def make(logical: str) -> Handler:
            async def handle(event: EventT) -> None:
                msg = event.message
                kafka_ts = int(msg.timestamp * 1000) if msg.timestamp else None
                result = ingest(RawMessage(logical, msg.partition, msg.offset, event.key, event.value, kafka_ts),
                                lookup)
                if result.dead is not None:
                    await topic["deadletter"].send(key=event.key, value=encode(result.dead))
                for pe in result.events:
                    await send_person_event(pe)
            return handle
        app.agent(app.topic(settings.topic(logical), **RAW), name=f"ingest-{logical}")(
            guarded(logical, make(logical)))

    # -- the registry: line -> person, account -> person, person -> profile
    async def handle_subject(event: EventT) -> None:
        subject = decode_input("registry.subjects", event.value)
        assert isinstance(subject, Subject)
        old = decode_profile(identity.get(subject_key(subject.subject_id).encode()))
        to_set, to_delete = identity_changes(old, subject)
        for key in to_delete:
            identity.pop(key.encode(), None)
        for key, value in to_set.items():
            identity[key.encode()] = value.encode()

    app.agent(app.topic(settings.topic("registry.subjects"), **RAW), name="registry")(
        guarded("registry.subjects", handle_subject))

    # -- indicators: to the value's owner (reverse mining there), and multi-card control of registered owners
    async def handle_indicator(event: EventT) -> None:
        indicator = decode_input("intel.indicators", event.value)
        assert isinstance(indicator, Indicator)
        value_key = indicator_value_key(indicator)
        await topic["yujing.contacts"].send(key=value_key.encode(),
                                            value=encode(ValueMessage(value_key=value_key, indicator=indicator)))
        if indicator.type == "account" and indicator.action == "add":
            owner = lookup(f"account:{indicator.value}")
            profile = decode_profile(lookup(subject_key(owner))) if owner else None
            if profile is not None:
                for control in account_controls(indicator, profile):
                    await topic["interception.account"].send(key=control.account.encode(), value=encode(control))
                for pe in control_events(indicator, profile):
                    await send_person_event(pe)

    app.agent(app.topic(settings.topic("intel.indicators"), **RAW), name="indicators")(
        guarded("intel.indicators", handle_indicator))

    # -- per-person state
    async def handle_person_event(event: EventT) -> None:
        pe = _person_decoder.decode(event.value)
        key = pe.person.encode()
        raw = persons.get(key)
        state = decode_state(raw) if raw else new_state(pe.person, pe.subject_id)
        update = apply_event(state, pe, state_policy)
        if update.changed:  # an event that changes nothing writes nothing (docs/sizing.md)
            persons[key] = encode_state(state)
        for contact in update.contacts:
            await topic["yujing.contacts"].send(key=contact.value_key.encode(),
                                                value=encode(ValueMessage(value_key=contact.value_key,
                                                                          contact=contact)))
        for trigger in update.triggers:
            await topic["yujing.triggers"].send(key=trigger.person.encode(), value=encode(trigger))

    app.agent(topic["yujing.events"], name="persons")(guarded("yujing.events", handle_person_event))

    # -- per-value contact index and indicator
    async def handle_value_message(event: EventT) -> None:
        vm = _value_msg_decoder.decode(event.value)
        key = vm.value_key.encode()
        raw = values.get(key)
        head = decode_head(raw) if raw else ValueHead()
        entries = ValueEntries(values, vm.value_key)
        if vm.indicator is not None:
            update = apply_indicator(head, entries, vm.value_key, vm.indicator, index_policy)
        elif vm.contact is not None:
            update = add_contact(head, entries, vm.contact, index_policy,
                                 track_fanout=vm.value_key.startswith("phone:"))
        else:
            return
        if update.head_changed:
            values[key] = encode_head(head)
        for person, hit in update.hits:
            await send_person_event(PersonEvent(person=person, source="hit", hit=hit))

    app.agent(topic["yujing.contacts"], name="values")(guarded("yujing.contacts", handle_value_message))
    return app


def run_worker(settings: Settings, faust_args: list[str]) -> None:
    """Run a Faust worker of the app; extra arguments pass through to faust's `worker` command."""
    import sys

    app = create_app(settings)
    args = list(faust_args)
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args = ["--loglevel", "info", *args]
    sys.argv = ["yujing", "worker", "--web-port", str(settings.web_port), "--web-bind", "127.0.0.1", *args]
    app.main()
