"""The hot path: signals, indicators, person events and contacts read by the batch, state written per checkpoint.

It runs inside the worker's Faust app (a task of it) with a consumer group of its own (`<app id>-stream`), because
faust's per-message path costs about 78 µs a record (docs/scaling.md): the batch is read with aiokafka's
`getmany`, every record goes through the same pure stages as before (`streams/processor.py`), and what a batch
makes for `yujing.events` and `yujing.contacts` leaves as one envelope per partition with the marks at its end
(`streams/envelope.py`).

    batch      getmany → in slices of at most `slice_bytes`: each record through its stage (a failure
               dead-letters that record) → outputs sent (envelopes, marks at their end) → the event loop runs
               (heartbeats: one getmany of envelopes holds hundreds of thousands of events) → the next batch
    checkpoint every `checkpoint_s`, and before partitions leave: every output delivered (acks=all), then in one
               Kafka transaction each table key changed since the last one (to its changelog, once) and the
               offsets (with the group generation: a worker the group dropped cannot commit, `fencing.py`): a
               worker killed midway leaves tables and offsets both at the last checkpoint
    arrival    a partition is paused; the run loop reads its tables back from their changelogs (committed
               transactions only), then its records from the committed offset
    failure    a send or checkpoint that fails: the held partitions are read back as on arrival, and read again
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from uuid import uuid4

import msgspec
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.partitioner import murmur2

from deploy.app.agent_loop import dead_output, handle_now, until_answered
from deploy.app.changelog import (
    changelog_topic,
    ensure_changelogs,
    restore,
    send_records,
    wait_for_leaders,
)
from deploy.app.fencing import Member, fence
from deploy.app.handlers import Handlers
from deploy.app.marks import MarkDeduper, PassedOn, owned_marks
from deploy.app.partitioned import Changes, PartitionedTable, Taken
from deploy.config import Settings
from dispatch.stage import REDIS_AWAY
from ops.metrics import PipelineMetrics
from schemas.internal import EVERY_PARTITION, Output
from schemas.records import encode, is_progress
from schemas.topics import SOURCE_TOPICS
from streams.envelope import (
    EventBatch,
    decode_envelope,
    encode_envelope,
    envelopes,
    items,
)
from streams.kafka_io import pipeline_groups
from streams.kafka_security import client_options
from streams.processor import Processor, progress_ts
from streams.watermarks import Mark, Marks

log = logging.getLogger(__name__)

ENVELOPED = ("yujing.events", "yujing.contacts")
HOT_TOPICS = (*SOURCE_TOPICS, *ENVELOPED)
# The tables a person or value partition owns (each changelog partition has that partition's owner as writer).
OWNED_TABLES = {"yujing.events": ("persons", "pending", "marks"), "yujing.contacts": ("values", "value-marks")}
SEND_RETRY = (KafkaTimeoutError, KafkaConnectionError)
CHANGELOG_BATCH_BYTES = 512 * 1024  # a checkpoint's records per partition and request; below the broker's 1 MB
FETCH_MAX_WAIT_MS = 20  # the longest the broker holds a fetch that finds less than FETCH_MIN_BYTES
# At a low rate the hot path took hundreds of small batches a second, each with a fetch and the marks that moved,
# and used most of a core; a hop now waits up to FETCH_MAX_WAIT_MS for a fuller fetch (docs/scaling.md, tenth step).
FETCH_MIN_BYTES = 8 * 1024
TRANSACTION_TIMEOUT_MS = 10_000  # a checkpoint left open by a killed worker holds its changelogs this long


class OutputsLost(Exception):
    """Outputs the broker did not take: no checkpoint may pass their inputs until they are read back."""


class CheckpointFailed(Exception):
    """A checkpoint's transaction was aborted: tables and offsets stay at the one before, nothing is lost."""


@lru_cache(maxsize=1 << 17)  # murmur2 is pure Python; persons and values come back again and again
def partition_of(key: bytes, partitions: int) -> int:
    """The partition a key goes to, as Kafka's default partitioner (and faust's producer) places it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def slices(batches: dict[TopicPartition, list[Any]],
           budget: int) -> Iterable[list[tuple[TopicPartition, list[Any]]]]:
    """A fetched batch in parts of at most `budget` value bytes (at least one record each), in order per partition."""
    part: list[tuple[TopicPartition, list[Any]]] = []
    size = 0
    for tp, records in batches.items():
        start = 0
        for i, record in enumerate(records):
            n = len(record.value) if record.value is not None else 0
            if size + n > budget and (part or i > start):
                if i > start:
                    part.append((tp, records[start:i]))
                yield part
                part, size, start = [], 0, i
            size += n
        if start < len(records):
            part.append((tp, records[start:]))
    if part:
        yield part


class _Record:
    """A consumer record as the handlers read a faust event: `key`, `value`, and `message` with Kafka's times in s."""

    __slots__ = ("key", "value", "topic", "partition", "offset", "timestamp", "tp")

    def __init__(self, record: Any, tp: TopicPartition) -> None:
        self.key, self.value, self.tp = record.key, record.value, tp
        self.topic, self.partition, self.offset = record.topic, record.partition, record.offset
        self.timestamp = record.timestamp / 1000 if record.timestamp and record.timestamp > 0 else None

    @property
    def message(self) -> _Record:
        return self


@dataclass
class Outbox:
    """What one batch sends: records for the enveloped topics gathered per partition, the rest as they came."""

    partitions: int
    routed: dict[tuple[str, int], tuple[list, list]] = field(default_factory=dict)
    direct: list[tuple[Output, float | None]] = field(default_factory=list)

    def add(self, outputs: Iterable[Output], origin: float | None) -> None:
        """Outputs of one input (`origin`: the Kafka time it descends from, unless an output names its own)."""
        for out in outputs:
            when = out.origin if out.origin is not None else origin
            if out.topic in ENVELOPED:
                to = (range(self.partitions) if out.partition == EVERY_PARTITION  # an erasure: a copy to each
                      else (partition_of(out.key, self.partitions),))
                for p in to:
                    records, origins = self.routed.setdefault((out.topic, p), ([], []))
                    records.append(out.value)
                    origins.append(when)
            else:
                self.direct.append((out, when))


@dataclass
class StreamReader:
    """The hot topics' consumer, its stages and its checkpoints (see the module's docstring)."""

    settings: Settings
    processor: Processor
    tables: dict[str, PartitionedTable]
    handlers: Handlers
    metrics: PipelineMetrics
    show: Callable[[list[Output]], Any] | None = None  # interceptions on the console's board (Redis)
    on_checkpoint: Callable[[], None] = lambda: None  # a checkpoint is written (the heap keeper freezes the state)
    checkpoint_s: float = 1.0
    max_records: int = 5000
    # Input bytes processed between two turns of the event loop: about half a second of work, so that the group's
    # heartbeats keep going (a getmany of envelopes can hold a minute of it; the session lasts 10 s).
    slice_bytes: int = 1 << 20
    poll_ms: int = 20  # an idle source is reported this often
    fetch_min_bytes: int = FETCH_MIN_BYTES
    # The longest the hot path holds the event loop: the agents (dispatch) wait for it at each of their awaits.
    turn_s: float = 0.005
    consumer: AIOKafkaConsumer | None = None
    producer: AIOKafkaProducer | None = None  # outputs (at least once: the ids make them once downstream)
    checkpointer: AIOKafkaProducer | None = None  # changelogs and offsets (a transaction per checkpoint)

    def __post_init__(self) -> None:
        self.logical_of = {self.settings.topic(t): t for t in HOT_TOPICS}
        self.partitions = self.handlers.channels.partitions
        self.lock = asyncio.Lock()
        self.position: dict[TopicPartition, int] = {}  # next offset to commit, per partition held
        self.committed: dict[TopicPartition, int | None] = {}
        self.held: set[TopicPartition] = set()
        self._arriving: set[TopicPartition] = set()  # assigned, not yet read back
        self.dedupe = MarkDeduper()
        self.passed_on = PassedOn(self.processor)
        self._pending: list[asyncio.Future] = []  # deliveries since the last checkpoint
        self._writing: asyncio.Task[dict[TopicPartition, int]] | None = None  # the checkpoint being written
        self._rewind_due = False  # a send failed where it could not be handled at once
        self._turn_at = 0.0  # when the hot path next lets the loop run other tasks
        self._last_checkpoint = time.monotonic()
        # False from the start of a batch, checkpoint or read-back until it ends: a stop in between (a cancel)
        # must not checkpoint, or offsets could pass records whose effects were not all sent or written.
        self._consistent = True
        self._epoch = 0  # read-backs so far: a batch fetched before one is stale
        self._board: asyncio.Queue[list[Output]] = asyncio.Queue()

    # -- running -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read, process and checkpoint until cancelled; a failed send reads the partitions back, a failed
        checkpoint is taken again with the next."""
        await asyncio.to_thread(ensure_changelogs, self.settings, self.tables, self.partitions)
        await wait_for_leaders(self.settings, list(self.tables), self.partitions)
        await self._start()
        assert self.consumer is not None
        board = asyncio.create_task(self._show_on_board())
        try:
            while True:
                if self._arriving:
                    async with self.lock:
                        await self._step(self._take_up)
                began = time.monotonic()
                batches = await self.consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
                fetched_in = self._epoch
                self.metrics.hot_path_seconds.labels("fetch").inc(time.monotonic() - began)
                async with self.lock:
                    if fetched_in != self._epoch:
                        # partitions were read back and sought while this batch waited for the lock: it is
                        # stale (processing it would move past records the tables no longer have)
                        batches = {}
                    await self._step(lambda: self._process(batches))
        finally:
            board.cancel()
            await self._stop()

    async def _step(self, step: Callable[[], Awaitable[None]]) -> None:
        """One step of the run loop: a checkpoint that failed is taken again with the next; any other failure
        (a send) reads the held partitions back."""
        try:
            self._consistent = False
            await step()
        except CheckpointFailed as exc:  # nothing of it was written: the next one writes it all
            log.warning("checkpoint not taken (%s): its changes go with the next one", exc)
        except Exception:
            log.exception("the hot path failed a send: reading its partitions back")
            await self._until_done("reading the partitions back", self._rewind)
        self._consistent = True

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        if self._rewind_due:
            raise OutputsLost("outputs were not delivered while partitions left")
        began = time.monotonic()
        await self._batch(batches)
        processed = time.monotonic()
        self.metrics.hot_path_seconds.labels("process").inc(processed - began)
        if processed - self._last_checkpoint >= self.checkpoint_s:
            await self.begin_checkpoint()
            self.metrics.hot_path_seconds.labels("checkpoint").inc(time.monotonic() - processed)
            progress = self.handlers.progress
            for topic, live in progress.live().items():
                self.metrics.progress_producers.labels(topic, "yes").set(live)
                self.metrics.progress_producers.labels(topic, "no").set(len(progress.producers[topic]) - live)
        elif self._writing is not None and self._writing.done():
            await self._written()  # at once: a failed send is read back sooner

    async def _until_done(self, what: str, step: Callable[[], Any], first_delay: float = 0.1) -> None:
        """Run `step` until it succeeds (the broker may be restarting), backing off to 10 s."""
        delay = first_delay
        while True:
            try:
                await step()
                return
            except Exception:
                log.exception("%s failed; again in %.1f s", what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _start(self) -> None:
        s = self.settings
        name = f"{s.app_id}-{s.worker_name}-stream" if s.worker_name else None
        self.consumer = AIOKafkaConsumer(
            **client_options(s), group_id=pipeline_groups(s)[1], group_instance_id=name,
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000, max_partition_fetch_bytes=4 * 1024 * 1024,
            # A quiet source is idle once a fetch sent the idle time after its last record comes back empty; a
            # fetch is answered after this at most, so that is within two of these more, and a decision waiting
            # for a quiet partition waits as long. The price: 50 empty fetches a second per broker while
            # everything is quiet (docs/scaling.md, seventh step).
            fetch_max_wait_ms=max(10, min(FETCH_MAX_WAIT_MS, s.idle_after_ms // 4)),
            fetch_min_bytes=self.fetch_min_bytes)
        self.producer = AIOKafkaProducer(**client_options(s), acks="all", enable_idempotence=True,
                                         max_request_size=4 * 1024 * 1024)
        # A stable transactional id lets a restarted worker abort its predecessor's open checkpoint at once;
        # another worker taking the partitions over waits for the transaction's timeout at most.
        self.checkpointer = AIOKafkaProducer(
            **client_options(s), transactional_id=f"{pipeline_groups(s)[1]}-{s.worker_name or uuid4()}",
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, max_request_size=4 * 1024 * 1024,
            max_batch_size=CHANGELOG_BATCH_BYTES)
        await self.producer.start()
        await self.checkpointer.start()
        fence(self.checkpointer, self._member)
        await self.consumer.start()
        self.consumer.subscribe(list(self.logical_of), listener=_Moves(self))

    async def _stop(self) -> None:
        try:
            if self.held:
                async with self.lock:
                    try:
                        await self._written()  # taken where the loop was consistent: it is written, whatever came after
                    except Exception:
                        log.exception("the last checkpoint's outputs were not all delivered: no checkpoint at the stop")
                    if self._consistent and not self._rewind_due:
                        await self.checkpoint()
        finally:
            if self.consumer is not None:
                await self.consumer.stop()
            for producer in (self.producer, self.checkpointer):
                if producer is not None:
                    await producer.stop()

    # -- one batch -----------------------------------------------------------------------------------------

    async def _batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        # An empty fetch is a slice too: its marks are how a channel that has gone quiet is declared idle.
        for part in list(slices(batches, self.slice_bytes)) or [[]]:
            outbox = Outbox(self.partitions)
            for tp, records in part:
                if tp not in self.held or not records:
                    continue
                start = self.position.get(tp)
                if start is not None and records[0].offset < start:
                    # fetched before a read-back sought the partition (a batch that waited for the lock): these
                    # offsets are processed already, or will be when they come again
                    records = [r for r in records if r.offset >= start]
                    if not records:
                        continue
                logical = self.logical_of[tp.topic]
                if logical in SOURCE_TOPICS:
                    await self._sources(logical, tp, records, outbox)
                else:
                    await self._derived(logical, tp, records, outbox)
                self.position[tp] = records[-1].offset + 1
                # a few bytes of marks can let ten thousand decisions through: the loop turns between partitions too
                await self._turn()
            marks = self._punctuate(outbox)
            sending = time.monotonic()
            await self._send(outbox, marks)
            self.metrics.hot_path_seconds.labels("send").inc(time.monotonic() - sending)
            await self._turn()  # an await that does not suspend lets nothing else run: heartbeats wait

    async def _turn(self) -> None:
        """Let the event loop run the worker's other tasks (the agents, heartbeats, the checkpoint's writes)."""
        await asyncio.sleep(0)
        self._turn_at = time.perf_counter() + self.turn_s

    async def _sources(self, logical: str, tp: TopicPartition, records: list[Any], outbox: Outbox) -> None:
        handler = self.handlers.indicator if logical == "intel.indicators" else self.handlers.ingest(logical)
        provider_progress = self.handlers.provider_progress(logical)
        channel, progress = f"{logical}/{tp.partition}", self.handlers.progress
        progress_records = 0  # providers' words, which are not signals
        for raw in records:
            record = _Record(raw, tp)
            if is_progress(raw.key):
                outbox.add(handle_now(logical, record, provider_progress), record.timestamp)
                progress.passed(channel, record.offset)
                progress_records += 1
            else:
                outputs = handle_now(logical, record, handler)
                outbox.add(outputs, record.timestamp)
                progress.saw(channel, progress_ts(outputs), record.offset)
            if time.perf_counter() >= self._turn_at:
                await self._turn()
        self.metrics.events_in.labels(logical).inc(len(records) - progress_records)

    async def _derived(self, logical: str, tp: TopicPartition, records: list[Any], outbox: Outbox) -> None:
        p = tp.partition
        for name in OWNED_TABLES[logical]:
            self.tables[name].active = p
        self.passed_on.read(logical, p)  # its view moves with these records (the lock keeps `_punctuate` out)
        processor, counted = self.processor, 0
        for raw in records:
            try:
                envelope = decode_envelope(logical, raw.value)
            except (msgspec.DecodeError, TypeError) as exc:
                outbox.add([dead_output(logical, raw.key, raw.value, p, raw.offset, raw.timestamp / 1000,
                                        f"not an envelope: {exc}"[:500])], None)
                continue
            events = isinstance(envelope, EventBatch)
            for item, origin in zip(items(envelope), envelope.origins):
                try:
                    outbox.add(processor.person_event(item, p, origin) if events  # type: ignore[arg-type]
                               else processor.value_message(item), origin)  # type: ignore[arg-type]
                except Exception as exc:  # a bug on one record must not stop the stream
                    log.exception("%s failed on an item of partition %s offset %s", logical, p, raw.offset)
                    outbox.add([dead_output(logical, raw.key, msgspec.json.encode(item), p, raw.offset,
                                            origin, f"internal error: {type(exc).__name__}: {exc}"[:500])], None)
                if time.perf_counter() >= self._turn_at:
                    await self._turn()
            counted += len(items(envelope))
            if envelope.marks:
                try:
                    if events:
                        outbox.add(processor.person_marks(p, Marks(envelope.marks), self.handlers.channels,
                                                          raw.offset, self.committed.get(tp)), None)
                    else:
                        processor.value_marks(p, Marks(envelope.marks), raw.offset)
                except Exception as exc:  # a bug on one envelope's marks must not stop the stream
                    log.exception("%s failed on the marks of partition %s offset %s", logical, p, raw.offset)
                    outbox.add([dead_output(logical, raw.key, raw.value, p, raw.offset, raw.timestamp / 1000,
                                            f"internal error on marks: {type(exc).__name__}: {exc}"[:500])], None)
            processor.read_past(logical, p, raw.offset, lambda: self._highwater(tp))
        for name in OWNED_TABLES[logical]:
            self.tables[name].active = -1  # a write outside a partition's records is refused, not misplaced
        if logical == "yujing.events":
            self.metrics.decisions_waiting.labels(str(p)).set(processor.waiting.waiting(p))
        self.metrics.events_in.labels(logical).inc(counted)

    def _highwater(self, tp: TopicPartition) -> int | None:
        return self.consumer.highwater(tp) if self.consumer is not None else None

    def _polled_at(self, tp: TopicPartition) -> float | None:
        """When the partition's end offset was last fetched (wall time), None before its first fetch."""
        at = self.consumer.last_poll_timestamp(tp) if self.consumer is not None else None
        return at / 1000 if at is not None else None

    def _punctuate(self, outbox: Outbox) -> dict[str, list[Mark]]:
        """The marks of the channels held that changed, by destination, after the records of this batch: an
        envelope goes to every partition of a destination whose marks changed."""
        owned = owned_marks(self.held, self.logical_of, self.handlers.progress, self.passed_on,
                            self.handlers.channels, self._highwater, self.committed.get, self._polled_at)
        fresh = {dest: new for dest, marks in owned.items() if (new := self.dedupe.fresh(dest, marks))}
        for dest in fresh:
            for p in range(self.partitions):
                outbox.routed.setdefault((dest, p), ([], []))
        return fresh

    async def _send(self, outbox: Outbox, marks: dict[str, list[Mark]]) -> None:
        """The batch's outputs: the direct ones, then the envelopes with `marks` at their end."""
        for out, origin in outbox.direct:  # by key, or to the partition an output names (a decisions progress)
            await self._produce(self.settings.topic(out.topic), out.key, encode(out.value), out.partition,
                                int(origin * 1000) if origin else None)
        for (dest, p), (records, origins) in outbox.routed.items():
            for envelope in envelopes(dest, records, origins, marks.get(dest, [])):
                await self._produce(self.settings.topic(dest), None, encode_envelope(envelope), p, None)
        for dest, sent in marks.items():
            self.dedupe.sent(dest, sent)
        now = time.time()
        for out, origin in outbox.direct:
            self.metrics.observe_outputs([out], origin, now)
        if self.show is not None:
            shown = [out for out, _ in outbox.direct if out.topic.startswith("interception.")]
            if shown:
                self._board.put_nowait(shown)

    async def _show_on_board(self) -> None:
        """The console's board, beside the hot path: Redis away holds the board back, not the stream (what
        waits here is lost in a crash; `interception.*` in Kafka stays the record)."""
        show = self.show
        while show is not None:
            outputs = await self._board.get()
            await until_answered("console board", lambda: show(outputs), "Redis", REDIS_AWAY,
                                 self.metrics.redis_retries.inc)

    async def _produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                       timestamp_ms: int | None) -> None:
        assert self.producer is not None
        producer = self.producer
        future = await until_answered(topic, lambda: producer.send(topic, value, key=key, partition=partition,
                                                                   timestamp_ms=timestamp_ms),
                                      "the broker", SEND_RETRY)
        self._pending.append(future)

    # -- checkpoints and moves -----------------------------------------------------------------------------

    async def checkpoint(self) -> None:
        """A checkpoint, written to its end (before partitions leave, at a stop)."""
        await self.begin_checkpoint()
        await self._written()

    async def begin_checkpoint(self) -> None:
        """Take a checkpoint where the loop is now, once the one before is written: the outputs sent since, each
        table key changed since (to its changelog, once) and the offsets. It is written while the loop goes on
        (`_write`); `_written` settles it. `CheckpointFailed`: this worker is no member of the group now."""
        await self._written()
        if self._rewind_due:
            raise OutputsLost("outputs were not delivered: the partitions are to be read back first")
        offsets = {tp: pos for tp, pos in self.position.items()
                   if tp in self.held and pos != self.committed.get(tp)}
        taken: dict[str, Taken] = {}
        changes: dict[str, Changes] = {}
        try:
            for name, table in self.tables.items():
                taken[name] = table.take()
            for name, parts in taken.items():
                changes[name] = {}
                for p, records in parts:  # encoding them all at once held the loop: it turns between partitions
                    changes[name][p] = records
                    if time.perf_counter() >= self._turn_at:
                        await self._turn()
        except BaseException:  # stopped in a turn (what was taken goes with the next checkpoint), or an encoding
            # failed (the partitions are read back, and what was taken with them)
            for name in taken:
                self.tables[name].abort()
            raise
        if (offsets or any(changes.values())) and not self._in_group():
            for table in self.tables.values():
                table.abort()
            raise CheckpointFailed("not a member of the group now (it rejoins, and its partitions are revoked)")
        outputs, self._pending = self._pending, []
        self._writing = asyncio.create_task(self._write(outputs, changes, offsets))
        self._last_checkpoint = time.monotonic()

    async def _write(self, outputs: list[asyncio.Future], changes: dict[str, Changes],
                     offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Outputs delivered (acks=all); then the changes and the offsets in one transaction, so that a worker
        killed midway leaves tables and offsets both at the last checkpoint (`CheckpointFailed`: aborted)."""
        assert self.checkpointer is not None
        if outputs:
            await asyncio.wait(outputs)
            refused = [OutputsLost("an output's send was cancelled") if f.cancelled() else f.exception()
                       for f in outputs if f.cancelled() or f.exception() is not None]
            if refused:
                raise refused[0]  # what the broker refused: the partitions are read back, the outputs made again
        if not (offsets or any(changes.values())):
            return offsets
        checkpointer = self.checkpointer
        try:
            async with checkpointer.transaction():
                sent = []
                for name, changed in changes.items():
                    topic = changelog_topic(self.settings, name)
                    for p, records in changed.items():
                        sent += await send_records(checkpointer, topic, p, records)
                        await asyncio.sleep(0)  # a flat-out checkpoint writes 100,000 keys: the loop goes on
                # A record the broker refuses (too large, say) fails only its own future, not the transaction:
                # the commit would carry the offsets without it.
                await asyncio.gather(*sent)
                if offsets:
                    await checkpointer.send_offsets_to_transaction(offsets, pipeline_groups(self.settings)[1])
        except KafkaError as exc:
            raise CheckpointFailed(f"{type(exc).__name__}: {exc}") from exc
        return offsets

    async def _written(self) -> None:
        """Wait for the checkpoint being written: settle its changes and offsets, or (it failed) give its changes
        back to the next one; raises what its outputs' delivery raised."""
        task = self._writing
        if task is None:
            return
        await asyncio.wait([task])  # a cancelled caller leaves the write going on: the stop waits for it again
        self._writing = None
        failure = asyncio.CancelledError() if task.cancelled() else task.exception()
        if failure is None:
            self.committed.update(task.result())
            for table in self.tables.values():
                table.settle()
            self.on_checkpoint()
            return
        for table in self.tables.values():
            table.abort()
        if isinstance(failure, CheckpointFailed):
            log.warning("checkpoint not taken (%s): its changes go with the next one", failure)
            return
        self._rewind_due = True  # outputs lost: no checkpoint may pass them until the partitions are read back
        raise failure

    def arrive(self, assigned: set[TopicPartition]) -> None:
        """Partitions arrived: paused until the run loop takes them up (`_take_up`). The read-back is not done in
        aiokafka's assignment callback, which sends no heartbeat while it runs: a long read-back there lets the
        session expire, and the group gives the partitions to another while this worker still reads them."""
        mine = {tp for tp in assigned if tp.topic in self.logical_of}
        self._arriving |= mine
        if mine and self.consumer is not None:
            self.consumer.pause(*mine)

    async def _take_up(self) -> None:
        """Read the arrived partitions' tables back from the changelogs, then read them from the committed
        offsets (asked after the read-back: the offsets that go with it); marks and caches start anew."""
        assert self.consumer is not None
        await self._written()  # the checkpoint being written is of the partitions held before: it ends first
        mine, self._arriving = self._arriving, set()
        if not mine:  # revoked while waiting for the lock
            return
        self._consistent = False
        await self._until_done("taking partitions up", lambda: self._read_back(mine))
        self.held |= mine
        self.consumer.resume(*mine)
        self._consistent = True

    async def _read_back(self, tps: set[TopicPartition]) -> None:
        """Tables of these partitions from their changelogs, then each read from its committed offset."""
        assert self.consumer is not None
        self._epoch += 1
        self._forget(tps)
        await self._restore(tps)
        pending = self.tables["pending"]
        for tp in tps:
            if self.logical_of[tp.topic] == "yujing.events":
                pending.active = tp.partition
                self.processor.drop_taken(tp.partition)
        pending.active = -1
        for tp in tps:
            self.committed[tp] = committed = await self.consumer.committed(tp)
            self.position.pop(tp, None)
            if committed is not None:
                self.position[tp] = committed
                self.consumer.seek(tp, committed)
            else:
                await self.consumer.seek_to_beginning(tp)

    def _member(self) -> Member:
        """This worker's identity in its group's current generation (what fences a checkpoint's offsets)."""
        coordinator = self.consumer._coordinator  # type: ignore[union-attr]  # aiokafka keeps no public one
        return coordinator.generation, coordinator.member_id, coordinator._group_instance_id

    def _in_group(self) -> bool:
        """Whether this worker still believes it is a member of its group (its heartbeat has not yet said the
        member id is unknown). A member that knows it was dropped takes no checkpoint; one that does not know yet
        is refused by the broker (`fencing.py`)."""
        coordinator = getattr(self.consumer, "_coordinator", None)  # aiokafka keeps no public one
        return coordinator is None or bool(coordinator.member_id)

    async def give_up(self, revoked: set[TopicPartition]) -> None:
        """Partitions leave: checkpoint what was done with them (unless the group dropped this worker), then
        forget them."""
        async with self.lock:
            self._arriving -= revoked
            mine = {tp for tp in revoked if tp in self.held}
            try:
                await self._written()
            except Exception:  # outputs lost (`_rewind_due`): the partitions leave at the last checkpoint
                log.exception("the last checkpoint's outputs were not all delivered")
            # No checkpoint in the middle of a batch (a stop: its outputs may not all be sent), past outputs not
            # delivered, or once the group has dropped this worker.
            unsafe = ("in the middle of a batch" if not self._consistent else
                      "with outputs not delivered" if self._rewind_due else
                      "dropped by the group" if not self._in_group() else None)
            if mine and unsafe:
                log.warning("partitions %s left without a checkpoint (%s): their next owner reads them from the last "
                            "one", sorted(f"{tp.topic}/{tp.partition}" for tp in mine), unsafe)
            elif mine:
                try:
                    await self.checkpoint()
                except Exception:
                    log.exception("no checkpoint before partitions left: the next owner reads from the last one")
            self.held -= mine
            self._forget(mine)

    async def _rewind(self) -> None:
        """Read every held partition back from its changelog and committed offset (after a failure)."""
        pending, self._pending = self._pending, []
        for future in pending:  # what failed is why we are here: its error is read, not left to asyncio's log
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await self._written()
        except Exception:  # its outputs' failure: the partitions are read back all the same
            pass
        self._rewind_due = False
        await self._read_back(set(self.held))  # what was not written is read again from the input

    def _forget(self, tps: set[TopicPartition]) -> None:
        moved: dict[str, list[int]] = {}
        for tp in tps:
            moved.setdefault(self.logical_of[tp.topic], []).append(tp.partition)
        self.handlers.progress.forget(f"{t}/{p}" for t, ps in moved.items() for p in ps)
        for logical in ENVELOPED:
            parts = moved.get(logical, [])
            self.processor.forget_partitions(logical, parts)
            for name in OWNED_TABLES[logical]:
                self.tables[name].drop(parts)
        self.dedupe.forget()
        self.passed_on.forget()

    async def _restore(self, tps: set[TopicPartition]) -> None:
        wanted: list[tuple[PartitionedTable, list[int]]] = []
        for logical in ENVELOPED:
            parts = sorted(tp.partition for tp in tps if self.logical_of[tp.topic] == logical)
            wanted += [(self.tables[name], parts) for name in OWNED_TABLES[logical] if parts]
        started = time.monotonic()
        read = await restore(self.settings, wanted)
        if any(read.values()):
            log.info("read back %s changelog records in %.1f s", read, time.monotonic() - started)

    def end_offsets(self) -> dict[TopicPartition, int]:
        """The end offsets of the partitions held, as last fetched (for the lag gauge)."""
        if self.consumer is None:
            return {}
        return {tp: end for tp in self.held if (end := self.consumer.highwater(tp)) is not None}

    def committed_offsets(self) -> dict[TopicPartition, int]:
        """The committed offsets of the partitions held (for the lag gauge)."""
        return {tp: off for tp, off in self.committed.items() if tp in self.held and off is not None}



class _Moves(ConsumerRebalanceListener):
    """Rebalances: a checkpoint before partitions leave, the tables read back when they arrive."""

    def __init__(self, reader: StreamReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.reader.give_up(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.reader.arrive(set(assigned))


