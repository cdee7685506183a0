"""Event-time order for decisions: how far each input channel has got, and the decisions waiting for it.

A person's events reach their partition of `yujing.events` from many channels: every partition of the three
signal topics and of `intel.indicators`, the value index (hits), and other person partitions (events re-routed
after a late registration). Each channel moves on at its own pace, so the arrival order of one person's
events depends on load, on the number of workers and on the replay speed. A decision made on arrival would
depend on it too.

So a person partition folds each event into the person's state on arrival (facts are kept in event-time
order), but decides only once every channel has passed the event's time: the decisions wait here, keyed by
(partition, event time, person, event), and are taken in that order when the partition's watermark passes
them. Every channel reports its progress in band: a `Mark` sent to every partition it writes to, after the
records it covers, so per partition the mark never overtakes them (Kafka keeps one producer's order).

    channel mark = every record of the channel with an earlier event time has been sent (its max ts so far, or
                   its providers' word that nothing earlier will come: `SourceProgress`);
                   `idle`: caught up with its input and quiet, so it holds nobody back; an idle mark below
                   a busy time seen before (a restarted worker knows no time) means past that time
    watermark    = the least mark of the channels a partition waits for (idle ones aside);
                   when all are idle: the greatest, since everything they had is in
    derived mark = the least mark of its busy inputs (never going back); idle when all its inputs are
    retraction   = a retraction notice reaches a person partition after every hit its value partition sent
                   before it, and before that partition decides at or after the notice's end: the end is
                   never before the indicator record that caused it; the value partition's mark passes that
                   record's time only once its indicator channel's has (which sends the record first); and
                   it sends the notices as it reads the record, before its next mark (one producer's order
                   per partition). So a hit on its way when the retraction was read (a contact at or after
                   the end, matched before) is folded, then voided, then decided: never counted. Unless the
                   retraction itself is late (below: read after its partition was idle while others moved on).

A source channel is a contract topic partition, assumed in event-time order (a record older than its
partition's mark is late: decided on arrival and counted). Derived channels pass the least of their own
inputs on: a person partition reports for the signals it folded (contacts, re-routes), a value partition for
the contacts and indicators it indexed (hits, retraction notices). The person partition's own decisions wait
for all of them; no channel waits for itself, so there is no cycle.
"""
from __future__ import annotations

import bisect
import time
from collections.abc import Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import msgspec
from msgspec import Struct

from schemas.internal import PersonEvent

NEVER = float("-inf")  # the time a channel or producer not heard yet was last heard


class Mark(Struct, array_like=True):
    """How far one channel has got: every record with an earlier event time has been sent."""

    channel: str  # "<logical topic>/<partition>"
    ts: int
    idle: bool = False


class Marks(Struct):
    """A marks message: the marks of the channels one worker owns, sent to every partition it writes to."""

    marks: list[Mark]


class Frontier(Struct, omit_defaults=True):
    """One input partition's view of its channels, and the watermark up to which it has decided."""

    seen: dict[str, list] = {}  # channel → [ts, idle]
    decided: int = 0
    mark_offset: int = -1  # the offset of the last marks message taken in (a lower one is a redelivery)
    # The decisions the marks messages since the last commit let through, as [offset, origin, encoded
    # decision]: the table keeps `decided` even when a crash lost the sends, so a redelivered marks message
    # sends its own again.
    outbox: list[list] = []
    out_ts: int = 0  # the time this partition last passed on, as a channel itself (`pass_on`)
    told: int = 0  # the decided watermark last told to dispatch (`decisions_progress`)


@dataclass(frozen=True)
class Topology:
    """Which channels feed which partitions: from the partition counts of the topics."""

    signal_partitions: dict[str, int]  # logical signal topic → partitions
    indicator_partitions: int
    partitions: int  # of yujing.events and yujing.contacts

    # Asked for at every marks message and every batch's marks: each list is built once.
    @cached_property
    def sources(self) -> tuple[str, ...]:
        """The signal topic partitions: what person partitions fold (and so pass on)."""
        return tuple(f"{t}/{p}" for t, n in sorted(self.signal_partitions.items()) for p in range(n))

    @cached_property
    def indicators(self) -> tuple[str, ...]:
        """The partitions of `intel.indicators` (controls to persons, indicators to values)."""
        return tuple(f"intel.indicators/{p}" for p in range(self.indicator_partitions))

    @cached_property
    def persons(self) -> tuple[str, ...]:
        """The person partitions, as channels (contacts and re-routed events)."""
        return tuple(f"yujing.events/{p}" for p in range(self.partitions))

    @cached_property
    def values(self) -> tuple[str, ...]:
        """The value partitions, as channels (hits)."""
        return tuple(f"yujing.contacts/{p}" for p in range(self.partitions))

    @cached_property
    def person_inputs(self) -> tuple[str, ...]:
        """What a person partition's decisions wait for."""
        return self.sources + self.indicators + self.persons + self.values

    @cached_property
    def value_inputs(self) -> tuple[str, ...]:
        """What a value partition's hits are complete for."""
        return self.persons + self.indicators


def merge(frontier: Frontier, marks: Iterable[Mark]) -> None:
    """Take in marks: a channel's time only moves forward; its idleness is its latest word.

    An idle mark still says that everything the channel had is in, also when its time is below the busy time
    seen before: a worker restarted (or taking the channel over) knows nothing of what was read before it, so
    it reports idle at the least time. Then the records at that busy time are in too: the time is one past it
    (else a decision at exactly that time waits for a mark that never comes; the ten-kill test found one)."""
    for m in marks:
        old = frontier.seen.get(m.channel)
        if old is None:
            frontier.seen[m.channel] = [m.ts, m.idle]
        else:
            floor = old[0] + 1 if m.idle and not old[1] else old[0]
            frontier.seen[m.channel] = [max(m.ts, floor), m.idle]


def pass_on(seen: dict[str, list], expected: Iterable[str], previous: int) -> tuple[int, bool]:
    """The mark a derived channel (a person or value partition) sends on: the least time of its busy inputs,
    never below what it sent before; when all are idle, it is idle and its time stays where it was.

    Not the greatest of idle inputs: an input that becomes busy again may be behind it, and downstream a
    channel's time never goes back, so that would claim progress the channel has not made (the ten-kill test
    found a value partition that did so after a restart, and a hit decided late).
    """
    busy = [seen.get(c, (0, False))[0] for c in expected if not seen.get(c, (0, False))[1]]
    if busy:
        return max(previous, min(busy)), False
    return previous, True


def low_watermark(seen: dict[str, list], expected: Iterable[str]) -> tuple[int, bool]:
    """The least time of the expected busy channels, or the greatest when all are idle; and whether all are.

    A channel never heard of holds the watermark at 0: a worker that has not started yet holds everyone back,
    which is the point (its records may be the earliest).
    """
    busy, idle = [], []
    for channel in expected:
        ts, is_idle = seen.get(channel, (0, False))
        (idle if is_idle else busy).append(ts)
    if busy:
        return min(busy), False
    return max(idle, default=0), True


class PendingEntry(Struct, array_like=True):
    """A decision waiting for the watermark: the event it is about, and the Kafka time of its origin."""

    event: PersonEvent
    origin: float | None = None


_pending_decoder = msgspec.msgpack.Decoder(PendingEntry)


def encode_pending(entry: PendingEntry) -> bytes:
    """A waiting decision as its changelog holds it."""
    return msgspec.msgpack.encode(entry)


def decode_pending(raw: bytes) -> PendingEntry:
    """A waiting decision from its changelog."""
    return _pending_decoder.decode(raw)


class PendingDecisions:
    """The decisions waiting per partition, one small table key each, in (event time, person, event) order.

    The table is the truth (it has a changelog and moves with its partition) and holds the entries as objects
    (a worker's table encodes them at a checkpoint: `encode_pending`); the sorted index per partition is a
    cache, read from the table the first time a partition is touched after it was (re)assigned.
    """

    def __init__(self, table: MutableMapping[bytes, PendingEntry]) -> None:
        self._table = table
        self._index: dict[int, list[bytes]] = {}

    def _keys(self, partition: int) -> list[bytes]:
        keys = self._index.get(partition)
        if keys is None:
            prefix = b"%d|" % partition
            keys = self._index[partition] = sorted(k for k in list(self._table.keys()) if k.startswith(prefix))
        return keys

    def add(self, partition: int, ts: int, entry: PendingEntry, event_key: str) -> None:
        """Wait for the watermark to pass `ts` before deciding on this event."""
        key = b"%d|%016d|%s|%s" % (partition, ts, entry.event.person.encode(), event_key.encode())
        keys = self._keys(partition)
        i = bisect.bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            keys.insert(i, key)
        self._table[key] = entry

    def due(self, partition: int, below: int) -> list[tuple[bytes, PendingEntry]]:
        """The entries with an event time before `below`, in order (still stored: `remove_first` when done)."""
        keys = self._keys(partition)
        end = bisect.bisect_left(keys, b"%d|%016d" % (partition, below))
        out = []
        for key in keys[:end]:
            entry = self._table.get(key)
            if entry is not None:
                out.append((key, entry))
        return out

    def remove_first(self, partition: int, count: int) -> None:
        """The first `count` decisions `due` returned were taken (one slice off the index, not one per key)."""
        keys = self._keys(partition)
        for key in keys[:count]:
            self._table.pop(key, None)
        del keys[:count]

    def drop_below(self, partition: int, ts: int) -> int:
        """Drop the entries with an event time before `ts`; how many."""
        keys = self._keys(partition)
        end = bisect.bisect_left(keys, b"%d|%016d" % (partition, ts))
        self.remove_first(partition, end)
        return end

    def remove_person(self, partition: int, person: str) -> int:
        """Drop the decisions waiting on one person (erased); how many."""
        keys = self._keys(partition)
        mine = [k for k in keys if (entry := self._table.get(k)) is not None and entry.event.person == person]
        for key in mine:
            self._table.pop(key, None)
        if mine:
            gone = set(mine)
            keys[:] = [k for k in keys if k not in gone]
        return len(mine)

    def waiting(self, partition: int) -> int:
        """How many decisions wait in the partition."""
        return len(self._keys(partition))

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the cached index of these partitions (revoked or reassigned: the table is read again)."""
        for p in partitions:
            self._index.pop(p, None)


def topic_of(channel: str) -> str:
    """The logical topic of a channel (`<topic>/<partition>`)."""
    return channel.rpartition("/")[0]


class SourceProgress:
    """How far this worker has read each source partition it owns: the marks of source channels.

    A partition read to its end is quiet once a fetch sent `idle_after_s` after its last record was read found
    nothing new. The Kafka client says when it handled each fetch's answer (`polled_at`, wall time) and sends the
    next fetch only after that, so the answer before the latest tells when the latest fetch was sent at the
    earliest. Judged on this worker's clock alone, a worker busy with a batch would find a partition quiet whose
    next records the broker already had, and they would come late.

    A topic can name the `producers` whose progress records count (`schemas.records.Progress`). A partition then
    stands at the least word of its live producers (at its latest record too when it has one producer) and never
    goes idle while one of them is live, so a decision waits for the providers' word, not for the idle time. A
    producer is live until it has been silent for the idle time on every partition of the topic this worker
    reads: one heard on another partition is waited for on this one (its word is on its way there too). Silent
    everywhere, it holds nothing back (a provider that died); with none live, the partition is judged quiet or not
    as above. Progress records are not records of the channel: they move its offset, not its time of last read.
    """

    def __init__(self, idle_after_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 producers: Mapping[str, Collection[str]] | None = None) -> None:
        self.idle_after_s = idle_after_s
        self.clock = clock
        self.wall = wall  # the clock of `polled_at`, read only to take its age: a step of it moves nothing else
        self.producers = {topic: frozenset(ids) for topic, ids in (producers or {}).items() if ids}
        self._ts: dict[str, int] = {}
        self._next_offset: dict[str, int] = {}
        self._last_read: dict[str, float] = {}
        self._answers: dict[str, tuple[float, float, float]] = {}  # latest polled_at; it and the one before, on clock
        self._progress: dict[str, dict[str, int]] = {}  # channel -> producer -> its progress there
        self._heard: dict[tuple[str, str], float] = {}  # (topic, producer) -> heard last, on any partition here

    def saw(self, channel: str, ts: int | None, offset: int) -> None:
        """A record of the channel was processed and its outputs sent (`ts` None: it was dead-lettered)."""
        if ts is not None and ts > self._ts.get(channel, 0):
            self._ts[channel] = ts
        self._next_offset[channel] = offset + 1
        self._last_read[channel] = self.clock()

    def passed(self, channel: str, offset: int) -> None:
        """A progress record of the channel was processed (or dead-lettered): only the offset moves."""
        self._next_offset[channel] = offset + 1

    def progressed(self, channel: str, producer: str, ts: int) -> bool:
        """A producer's progress record read on the channel (then `passed`); False: not a producer whose progress
        counts on this topic, ignored."""
        topic = topic_of(channel)
        if producer not in self.producers.get(topic, ()):
            return False
        known = self._progress.setdefault(channel, {})
        known[producer] = max(ts, known.get(producer, 0))
        self._heard[(topic, producer)] = self.clock()
        return True

    def live(self) -> dict[str, int]:
        """How many of each topic's listed producers this worker heard within the idle time."""
        now = self.clock()
        return {topic: sum(self._heard_within(topic, p, now) for p in ids) for topic, ids in self.producers.items()}

    def _heard_within(self, topic: str, producer: str, at: float) -> bool:
        """Whether the producer was heard on the topic less than the idle time before `at` (this clock)."""
        return at - self._heard.get((topic, producer), NEVER) < self.idle_after_s

    def mark(self, channel: str, highwater: int | None, committed: int | None = None,
             polled_at: float | None = None) -> Mark:
        """The channel's mark: at its live producers' least word; else idle once read up to `highwater` (fetched at
        `polled_at`, if known) and quiet."""
        ts = self._ts.get(channel, 0)
        position = self._next_offset.get(channel, committed if committed is not None else 0)
        sent_at = self._fetch_sent_at(channel, polled_at) if polled_at is not None else self.clock()
        topic = topic_of(channel)
        if topic in self.producers:
            known = self._progress.get(channel, {})
            live = [known.get(p, 0) for p in self.producers[topic] if self._heard_within(topic, p, sent_at)]
            if live:
                # One producer's records are its partition's event-time order (as any source's), so its latest record
                # counts too; of two producers, one's record says nothing of the other's.
                sole = len(self.producers[topic]) == 1
                return Mark(channel, max(ts, live[0]) if sole else min(live))
        quiet = sent_at - self._last_read.get(channel, NEVER) >= self.idle_after_s
        if highwater is not None and position >= highwater and quiet:
            return Mark(channel, ts + 1, True)  # everything it had, its latest time included, is in
        return Mark(channel, ts)

    def _fetch_sent_at(self, channel: str, polled_at: float) -> float:
        """The earliest the fetch answered at `polled_at` can have been sent, on this clock: when the answer
        before it was handled (-inf until two were seen; answers missed between marks only make it earlier)."""
        latest, latest_at, before_at = self._answers.get(channel, (float("nan"), NEVER, NEVER))
        if polled_at != latest:
            before_at, latest_at = latest_at, self.clock() - (self.wall() - polled_at)
            self._answers[channel] = (polled_at, latest_at, before_at)
        return before_at

    def forget(self, channels: Iterable[str]) -> None:
        """These partitions went to another worker: its marks are now its own."""
        for c in channels:
            self._ts.pop(c, None)
            self._next_offset.pop(c, None)
            self._last_read.pop(c, None)
            self._answers.pop(c, None)
            self._progress.pop(c, None)
