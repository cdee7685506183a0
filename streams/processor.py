"""What each agent does to one message, with tables as mappings and outputs returned, not sent.

The worker's Faust app (`deploy/app/`) sends the outputs to Kafka; the local runner (`streams/local.py`) queues
them in memory to replay a simulated city through exactly the same logic (training, evaluation, benches).
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec

from schemas.internal import DECIDER, EVERY_PARTITION, Decision, Output, PersonEvent, ValueMessage
from schemas.records import (
    MAX_TS_MS,
    MIN_TS_MS,
    DomainInterception,
    Indicator,
    Progress,
    Subject,
    progress_key,
)
from schemas.units import MINUTE_MS
from streams.controls import (
    account_controls,
    control_events,
    indicator_value_key,
    interceptions_for,
)
from streams.identity import decode_profile, identity_changes, subject_key
from streams.identity_replica import IdentityReplica
from streams.ingest import resolve_late
from streams.person_state import (
    PersonState,
    StatePolicy,
    Update,
    apply_event,
    event_key,
    event_time,
    new_state,
)
from streams.table_views import ValueEntries, values_listing
from streams.value_index import (
    IndexPolicy,
    add_contact,
    apply_indicator,
    forget_person,
    stored_head,
)
from streams.watermarks import (
    Frontier,
    Mark,
    Marks,
    PendingDecisions,
    PendingEntry,
    Topology,
    low_watermark,
    merge,
    pass_on,
)

Table = MutableMapping[bytes, bytes]
# How often (event time) a person partition tells dispatch how far its decisions are written while its inputs are
# busy: a decision held for review is released at most this long after its deadline when its person has no later
# decision
PROGRESS_EVERY_MS = MINUTE_MS


# Called after an event was folded into a person's state, with what it produced; returns more outputs
# (decisions) and may change the state (setting update.changed).
PersonHook = Callable[[PersonState, PersonEvent, Update], list[Output]]


def progress_ts(outputs: list[Output]) -> int | None:
    """The event time a source record reached, from what it produced (None: it was dead-lettered)."""
    times = [event_time(o.value) for o in outputs if isinstance(o.value, PersonEvent)]
    times += [o.value.indicator.ts for o in outputs if isinstance(o.value, ValueMessage) and o.value.indicator]
    return max(times, default=None)


def decisions_progress(partition: int, watermark: int) -> Output:
    """The decider's progress on a partition of `yujing.decisions`: its decisions below `watermark` are all written
    (dispatch releases the decisions held for review there whose deadline it passed, after those decisions)."""
    return Output("yujing.decisions", progress_key(DECIDER), Progress(producer=DECIDER, progress_ts=watermark),
                  partition=partition)


def person_output(pe: PersonEvent) -> Output:
    """A person event, keyed by person, for `yujing.events`."""
    return Output("yujing.events", pe.person.encode(), pe)


@dataclass
class Processor:
    """The per-message logic of every agent, over the tables it is handed."""

    identity: Table  # written by the registry agent (its changelog is the record)
    # Person states as objects: a worker's table encodes the changed ones at a checkpoint, not per event. An
    # event or decision that changes nothing leaves its state as it was (`Update.changed`), so only the
    # states written back here differ from what the changelog has.
    persons: MutableMapping[bytes, PersonState]
    values: MutableMapping[bytes, Any]  # value heads as objects, entries encoded (streams/value_index.py)
    index_policy: IndexPolicy
    state_policy: StatePolicy
    on_person: PersonHook | None = None
    # Decisions wait for the watermark (streams/watermarks.py) in these tables; the frontiers are cached here.
    pending: MutableMapping[bytes, PendingEntry] = field(default_factory=dict)
    marks: MutableMapping[bytes, bytes] = field(default_factory=dict)  # person partitions' frontiers
    # Value partitions' frontiers: a table of their own, so that each changelog partition has one writer (the
    # owner of that input partition); None keeps them in `marks` (one process).
    value_frontiers: MutableMapping[bytes, bytes] | None = None
    late_decisions: int = 0  # decided on arrival: their partition's watermark had passed them already
    on_late: Callable[[], None] = lambda: None  # hears of each late decision (the metrics count them)
    # Where lookups read: the identity table itself (in one process), or a worker's replica of all of it.
    directory: IdentityReplica | None = None

    def __post_init__(self) -> None:
        self.waiting = PendingDecisions(self.pending)
        self.frontiers: dict[str, Frontier] = {}
        self.live: set[str] = set()  # frontiers whose view this worker may pass on (`read_past`)
        self.catch_up: dict[str, int] = {}  # the offset a partition taken up must read again first

    def lookup(self, key: str) -> str | None:
        """Identity lookup: `phone:…` / `account:…` → subject id, `subject:…` → profile JSON."""
        raw = (self.identity if self.directory is None else self.directory).get(key.encode())
        return raw.decode() if raw is not None else None

    def subject(self, subject: Subject) -> list[Output]:
        """A registry record: update line → person, account → person and the profile."""
        old = decode_profile(self.lookup(subject_key(subject.subject_id)))
        to_set, to_delete = identity_changes(old, subject)
        for key in to_delete:
            self._set_identity(key, None)
        for key, value in to_set.items():
            self._set_identity(key, value)
        return []

    def _set_identity(self, key: str, value: str | None) -> None:
        """Write one identity key (None: delete it), seen at once by this worker's replica."""
        raw = value.encode() if value is not None else None
        if raw is None:
            self.identity.pop(key.encode(), None)
        else:
            self.identity[key.encode()] = raw
        if self.directory is not None:
            self.directory.set_local(key.encode(), raw)

    def subject_erased(self, subject_id: str) -> list[Output]:
        """A registry tombstone: the person's lines, cards and profile leave the identity table, and their
        partition hears of it (`erase`)."""
        old = decode_profile(self.lookup(subject_key(subject_id)))
        keys = [f"phone:{p}" for p in old.phones] + [f"account:{a}" for a in old.accounts] if old else []
        for key in [*keys, subject_key(subject_id)]:  # the profile last: a tombstone read again still finds them
            if key != subject_key(subject_id) and self.lookup(key) != subject_id:
                continue  # a line or card someone else holds now
            self._set_identity(key, None)
        return [person_output(PersonEvent(person=subject_id, subject_id=subject_id, source="erasure"))]

    def erase(self, person: str, partition: int) -> list[Output]:
        """A person erased: their state and the decisions waiting on them go, and every value partition drops
        their entries (one message to each)."""
        self.persons.pop(person.encode(), None)
        self.waiting.remove_person(partition, person)
        return [Output("yujing.contacts", person.encode(), ValueMessage(value_key="", erased=person),
                       partition=EVERY_PARTITION)]

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

    def person_event(self, pe: PersonEvent, partition: int = 0, origin: float | None = None) -> list[Output]:
        """Fold an event into the person's state; index its contacts and trigger at once; decide in event-time
        order, once the partition's watermark has passed the event (at once if it already has: a late event)."""
        if pe.source == "erasure":
            return self.erase(pe.person, partition)
        late = resolve_late(pe, self.lookup)
        if late is not None:  # registered since ingest looked: to the person's own partition instead
            return [person_output(late)]
        key = pe.person.encode()
        stored = self.persons.get(key)
        state = stored if stored is not None else new_state(pe.person, pe.subject_id)
        try:
            out, changed = self._fold(state, pe, partition, origin)
        except Exception:
            if stored is not None:  # changed in place before it failed: the changelog gets what the worker holds
                self.persons[key] = state
            raise
        if changed:  # an event that changes nothing writes nothing (docs/sizing.md)
            self.persons[key] = state
        return out

    def _fold(self, state: PersonState, pe: PersonEvent, partition: int,
              origin: float | None) -> tuple[list[Output], bool]:
        decided = self.frontier("yujing.events", partition).decided
        update = apply_event(state, pe, self.state_policy, floor=decided if self.on_person is not None else 2**62)
        out = [Output("yujing.contacts", c.value_key.encode(), ValueMessage(value_key=c.value_key, contact=c))
               for c in update.contacts]
        out += [Output("yujing.triggers", t.person.encode(), t) for t in update.triggers]
        if self.on_person is not None and update.noted and not update.late:
            ts = event_time(pe)
            if update.replay:
                out += self.on_person(state, pe, update)  # re-sends what it decided, if it did
                if ts >= decided:
                    self.waiting.add(partition, ts, PendingEntry(pe, origin), event_key(pe))  # same key: no-op
            elif ts < decided:
                self.late_decisions += 1
                self.on_late()
                out += self.on_person(state, pe, update)  # the scorer may change the state too (the tier)
            else:
                self.waiting.add(partition, ts, PendingEntry(pe, origin), event_key(pe))
        return out, update.changed

    def frontier(self, topic: str, partition: int) -> Frontier:
        """A partition's view of its channels (read from the `marks` table the first time)."""
        name = f"{topic}/{partition}"
        frontier = self.frontiers.get(name)
        if frontier is None:
            raw = self._marks_of(topic).get(name.encode())
            frontier = self.frontiers[name] = msgspec.msgpack.decode(raw, type=Frontier) if raw else Frontier()
        return frontier

    def read_past(self, topic: str, partition: int, offset: int, highwater: Callable[[], int | None]) -> None:
        """A record of a person or value partition was read and its outputs sent: maybe it has caught up.

        A partition just taken up (a restart, a move) may have sent less than its view says: the outputs of
        the records before its last marks message may have died with the old process (and its table write
        too), and are sent again as those records are read again. So its view is passed on only once it has
        read again up to where its partition ended when it took it up. Any record counts, data or marks: the
        record there may be data, and marks go only when they change, so none may come after it for long.
        `highwater` (the partition's end offset now) is asked once, at the first record after it was taken up.
        """
        name = f"{topic}/{partition}"
        if name in self.live:
            return
        if name not in self.catch_up:
            self.catch_up[name] = max(self.frontier(topic, partition).mark_offset, (highwater() or 0) - 1)
        if offset >= self.catch_up[name]:
            self.live.add(name)

    def _marks_of(self, topic: str) -> MutableMapping[bytes, bytes]:
        if topic == "yujing.contacts" and self.value_frontiers is not None:
            return self.value_frontiers
        return self.marks

    def _save_frontier(self, topic: str, partition: int, frontier: Frontier) -> None:
        self._marks_of(topic)[f"{topic}/{partition}".encode()] = msgspec.msgpack.encode(frontier)

    def person_marks(self, partition: int, marks: Marks, topology: Topology, offset: int = -1,
                     committed: int | None = None) -> list[Output]:
        """Marks reached a person partition: take the decisions its new watermark lets through.

        A marks message read again after a crash (its offset not above the last one taken in) finds its
        decisions already taken: it sends again those it sent, from the outbox, under the same ids. The outbox
        keeps the decisions of marks messages from the partition's `committed` offset on: only those can be
        read again.
        """
        frontier = self.frontier("yujing.events", partition)
        if 0 <= offset <= frontier.mark_offset:
            return [Output("yujing.decisions", d.person.encode(), d, origin)
                    for o, origin, raw in frontier.outbox if o == offset
                    for d in [msgspec.json.decode(raw, type=Decision)]]
        merge(frontier, marks.marks)
        watermark, idle = low_watermark(frontier.seen, topology.person_inputs)
        out = self.decide_until(partition, watermark)
        frontier.mark_offset = max(offset, frontier.mark_offset)
        if committed is not None:
            frontier.outbox = [entry for entry in frontier.outbox if entry[0] >= committed]
        if out and offset >= 0:
            frontier.outbox += [[offset, o.origin, msgspec.json.encode(o.value)] for o in out
                                if o.topic == "yujing.decisions"]
        # told after the decisions it vouches for; at once when the inputs idle (a replay's end: what is due is
        # released whatever the steps the watermark took to get there)
        if MIN_TS_MS <= frontier.decided < MAX_TS_MS and frontier.decided > frontier.told and \
                (idle or frontier.decided >= frontier.told + PROGRESS_EVERY_MS):  # (below MIN_TS_MS: no time yet)
            frontier.told = frontier.decided
            out.append(decisions_progress(partition, frontier.decided))
        self._save_frontier("yujing.events", partition, frontier)
        return out

    def value_marks(self, partition: int, marks: Marks, offset: int = -1) -> None:
        """Marks reached a value partition: remembered, to pass on (`out_mark`)."""
        frontier = self.frontier("yujing.contacts", partition)
        merge(frontier, marks.marks)
        frontier.mark_offset = max(offset, frontier.mark_offset)
        self._save_frontier("yujing.contacts", partition, frontier)

    def out_mark(self, topic: str, partition: int, topology: Topology) -> Mark:
        """The mark a person or value partition passes on, from its view once it has read up to where it
        took its partition up (`read_past`); until then a busy mark that claims nothing.

        Asked again with nothing read in between, it gives the same mark: the hot path keeps it until the
        partition's records are read (deploy/app/marks.py, `PassedOn`)."""
        frontier = self.frontiers.get(f"{topic}/{partition}")
        if frontier is None or f"{topic}/{partition}" not in self.live:
            # Taken up and still reading again what the old process had read: busy, at no time at all (a
            # channel's time never goes back downstream, but its word on being idle is the latest one).
            return Mark(f"{topic}/{partition}", 0, False)
        expected = topology.sources if topic == "yujing.events" else topology.value_inputs
        ts, idle = pass_on(frontier.seen, expected, frontier.out_ts)
        frontier.out_ts = ts  # stored with the frontier's next write
        return Mark(f"{topic}/{partition}", ts, idle)

    def decide_until(self, partition: int, watermark: int) -> list[Output]:
        """Take the waiting decisions of a partition with an event time before `watermark`, in order."""
        frontier = self.frontier("yujing.events", partition)
        if watermark <= frontier.decided:
            return []
        frontier.decided = watermark
        out: list[Output] = []
        taken = 0
        try:
            for _, entry in self.waiting.due(partition, watermark):
                pe = entry.event
                try:
                    state = self.persons.get(pe.person.encode())
                    if state is not None and self.on_person is not None:
                        update = Update(noted=True)
                        out += [o._replace(origin=entry.origin) for o in self.on_person(state, pe, update)]
                        if update.changed:
                            self.persons[pe.person.encode()] = state
                except Exception:
                    # It stays, and those after it: the partition has decided only up to it (a read-back drops
                    # what is below the decided watermark as taken, `drop_taken`).
                    frontier.decided = min(frontier.decided, event_time(pe))
                    raise
                taken += 1
        finally:  # those taken leave, also when one fails
            self.waiting.remove_first(partition, taken)
        return out

    def drop_taken(self, partition: int) -> int:
        """A person partition was read back: drop the waiting decisions it brought back that were taken before
        (below its decided watermark; a table may keep them until the rest written with them is taken too)."""
        return self.waiting.drop_below(partition, self.frontier("yujing.events", partition).decided)

    def forget_partitions(self, topic: str, partitions: list[int]) -> None:
        """Partitions left this worker: drop what is cached of them (their tables stay the truth)."""
        for p in partitions:
            self.frontiers.pop(f"{topic}/{p}", None)
            self.live.discard(f"{topic}/{p}")
            self.catch_up.pop(f"{topic}/{p}", None)
        if topic == "yujing.events":
            self.waiting.forget(partitions)

    def value_message(self, vm: ValueMessage) -> list[Output]:
        """A contact or indicator change for one value: index it, match it, mine backwards, tell of an end."""
        if vm.erased is not None:
            self._erase_entries(vm.erased)
            return []
        key = vm.value_key.encode()
        stored = self.values.get(key)
        head = stored_head(stored)
        entries = ValueEntries(self.values, vm.value_key)
        try:
            if vm.indicator is not None:
                update = apply_indicator(head, entries, vm.value_key, vm.indicator, self.index_policy)
            elif vm.contact is not None:
                update = add_contact(head, entries, vm.contact, self.index_policy,
                                     track_fanout=vm.value_key.startswith("phone:"))
            else:
                return []
        except Exception:
            if head is stored:  # changed in place before it failed: the changelog gets what the worker holds
                self.values[key] = head
            raise
        if update.head_changed:
            self.values[key] = head
        # The notices after the hits: on each person's partition they arrive after every hit sent before them.
        return ([person_output(PersonEvent(person=person, source="hit", hit=hit)) for person, hit in update.hits]
                + [person_output(PersonEvent(person=person, source="retraction", retraction=note))
                   for person, note in update.notices])

    def _erase_entries(self, person: str) -> None:
        """An erased person leaves every value of this partition they are listed under."""
        for value_key in values_listing(self.values, person):
            head = stored_head(self.values.get(value_key.encode()))
            if forget_person(head, ValueEntries(self.values, value_key), person):
                self.values[value_key.encode()] = head
