"""The Faust app: thin agents that decode, call the pure stages, and send.

    signals.*          --ingest-->    yujing.events (key: person)      identity resolved via the registry
    registry.subjects  --registry-->  identity table; every worker follows all of it (its identity replica)
    intel.indicators   --indicators-> yujing.contacts (key: value)     + interception.account (multi-card control)
    yujing.events      --persons-->   persons table; yujing.contacts; yujing.triggers
    yujing.contacts    --values-->    values table (contact index + indicator); hits -> yujing.events

Decisions are taken in event-time order behind a watermark (streams/watermarks.py): every worker sends the
marks of the channels it owns (source partitions it reads, person and value partitions it holds) to every
partition those channels write to, from a timer, after the records they cover.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
import logging
import time
from typing import Any, Callable

import faust
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from faust.types import EventT
import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from deploy.config import SIGNAL_TOPICS, Settings
from dispatch.cooldown import Cooldown
from dispatch.escalation import EscalationStore
from dispatch.routing import load_routes
from dispatch.stage import Dispatcher
from schemas.deadletter import dead_letter
from schemas.decode import InvalidRecord, decode_input
from schemas.internal import Decision, PersonEvent, ValueMessage
from schemas.records import encode
from ops.board import OpsBoard
from ops.console import console_state, page
from ops.metrics import ConsumerLag, PipelineMetrics
from dispatch.task_queue import TaskQueues
from schemas.records import Warning
from streams.identity import decode_profile, subject_key
from streams.ingest import RawMessage, ingest
from streams.identity_replica import IdentityReplica
from streams.person_state import StatePolicy, event_time
from streams.processor import Output, Processor, person_output
from streams.value_index import IndexPolicy
from streams.watermarks import MARKS_KEY, Mark, Marks, SourceProgress, Topology
from scorers.dataset import Ages
from scorers.decide import Decider
from scorers.model import META_FILE, Model, ModelMismatch, load
from scorers.tiers import TierPolicy
from scorers.training import train_model

log = logging.getLogger(__name__)

RAW = {"key_serializer": "raw", "value_serializer": "raw"}
_person_decoder = msgspec.json.Decoder(PersonEvent)
_value_msg_decoder = msgspec.json.Decoder(ValueMessage)
_decision_decoder = msgspec.json.Decoder(Decision)
_marks_decoder = msgspec.json.Decoder(Marks)
MARK_INTERVAL_S = 0.1  # how often a worker sends its channels' marks (a decision waits about this long, twice)


def topology(settings: Settings) -> Topology:
    """The channels of the watermark, from the partitions the topics have on the broker (else the settings)."""
    from deploy.kafka_io import partition_counts

    counts = partition_counts(settings, [*SIGNAL_TOPICS, "intel.indicators", "yujing.events"])
    return Topology(signal_partitions={t: counts.get(t, settings.signal_partitions) for t in SIGNAL_TOPICS},
                    indicator_partitions=counts.get("intel.indicators", settings.partitions),
                    partitions=counts.get("yujing.events", settings.partitions))


def progress_ts(outputs: list[Output]) -> int | None:
    """The event time a source record reached, from what it produced (None: it was dead-lettered)."""
    times = [event_time(o.value) for o in outputs if isinstance(o.value, PersonEvent)]
    times += [o.value.indicator.ts for o in outputs if isinstance(o.value, ValueMessage) and o.value.indicator]
    return max(times, default=None)


def policies(settings: Settings) -> tuple[IndexPolicy, StatePolicy]:
    """The index and state policies the settings ask for."""
    hour = 3_600_000
    index = IndexPolicy(lookback_ms=settings.lookback_hours * hour,
                        late_tolerance_ms=settings.late_tolerance_minutes * 60_000,
                        max_people=settings.index_max_people, fanout_threshold=settings.fanout_threshold)
    return index, StatePolicy(window_ms=settings.lookback_hours * hour)


def faust_overrides(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Faust settings from `YUJING_FAUST_OPTIONS` (a JSON object), for tuning a deployment without code."""
    raw = (os.environ if env is None else env).get("YUJING_FAUST_OPTIONS", "")
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"YUJING_FAUST_OPTIONS is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise SystemExit("YUJING_FAUST_OPTIONS must be a JSON object of faust settings")
    return options


def create_app(settings: Settings, model: Model | None = None, registry: CollectorRegistry | None = None) -> faust.App:
    """A Faust app wired to the settings' broker, data folder and topics, with every agent registered.

    With a model, the persons agent scores and decides (`yujing.decisions`); without, it only keeps state.
    Metrics go to `registry` (a new one by default) and are served at `/metrics` on the web port.
    """
    datadir = settings.data_dir / "faust" / settings.app_id  # faust names table files without the app id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    options: dict[str, Any] = dict(
        broker=settings.kafka_url,
        store="rocksdb://",
        datadir=str(datadir),
        web_bind=settings.bind_host,
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
    if settings.worker_name:  # static membership: restarted under the same name, it rejoins without a wait
        options["consumer_group_instance_id"] = f"{settings.app_id}-{settings.worker_name}"
    app = faust.App(settings.app_id, **(options | faust_overrides()))
    topics: dict[str, faust.TopicT] = {}

    def topic(logical: str) -> faust.TopicT:
        if logical not in topics:
            topics[logical] = app.topic(settings.topic(logical), **RAW)
        return topics[logical]

    # Tables hold bytes under bytes keys (faust then stores both raw); values are msgspec-encoded records.
    raw_table = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
    index_policy, state_policy = policies(settings)
    # The registry agent writes the identity table; every worker reads all of it through its own replica of the
    # changelog (streams/identity_replica.py): faust's GlobalTable replicas missed other workers' writes.
    identity = app.Table("identity", **raw_table)
    replica = IdentityReplica()
    identity_changelog = f"{settings.app_id}-identity-changelog"
    replica.load(settings, identity_changelog)
    processor = Processor(identity=identity, directory=replica,
                          persons=app.Table("persons", **raw_table), values=app.Table("values", **raw_table),
                          index_policy=index_policy, state_policy=state_policy,
                          pending=app.Table("pending", **raw_table), marks=app.Table("marks", **raw_table))
    channels = topology(settings)
    progress = SourceProgress()

    @app.task
    async def follow_identity() -> None:
        await replica.follow(settings, identity_changelog)
    if model is not None:
        processor.on_person = Decider(model, TierPolicy.load(), Ages(processor.lookup))

    routes = load_routes()
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    redis_prefix = f"{settings.topic_prefix}{settings.app_id}:"
    board = OpsBoard(redis_client, redis_prefix)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = PipelineMetrics(registry)
    identity_keys = Gauge("yujing_identity_keys", "Keys in this worker's replica of the identity table",
                          registry=registry)
    identity_keys.set_function(lambda: len(replica))
    registry.register(ConsumerLag(lambda: app.monitor.tp_end_offsets, lambda: app.monitor.tp_committed_offsets,
                                  lambda real: real[len(settings.topic_prefix):]))

    async def send(outputs: list[Output], timestamp: float | None) -> None:
        # Outputs carry the Kafka timestamp of the input they come from, so every hop down the chain knows when
        # the originating signal (or case element) reached Kafka: the end-to-end latency at the last hop. A
        # decision taken when a mark let it through carries its own event's.
        for out in outputs:
            origin = out.origin if out.origin is not None else timestamp
            await topic(out.topic).send(key=out.key, value=encode(out.value), timestamp=origin)

    def guarded(logical: str, handler: Callable[[EventT], Any],
                sent: Callable[[Any, list[Output]], None] | None = None) -> Callable[[Any], Any]:
        """Run `handler` on every event and send its outputs; a failure dead-letters that event, nothing else.

        `sent` hears of every record once its outputs are sent: the channel's progress (its mark follows them).
        """
        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                msg = event.message
                if event.key != MARKS_KEY:  # marks are the workers' bookkeeping, not records
                    metrics.events_in.labels(logical).inc()
                try:
                    outputs = await until_redis_answers(logical, lambda: handler(event))
                except InvalidRecord as exc:
                    outputs = [_dead(logical, event, exc.reason, exc.field)]
                except Exception as exc:  # a bug on one record must not stop the stream
                    log.exception("%s failed on partition %s offset %s", logical, msg.partition, msg.offset)
                    outputs = [_dead(logical, event, f"internal error: {type(exc).__name__}: {exc}"[:500])]
                origin = msg.timestamp or None
                await send(outputs, origin)
                if sent is not None:
                    sent(msg, outputs)
                metrics.observe_outputs(outputs, origin, time.time())
                await until_redis_answers("console board", lambda: show(outputs))
        agent.__name__ = logical.replace(".", "_")
        return agent

    async def until_redis_answers(what: str, step: Callable[[], Any]) -> Any:
        """Run `step` until Redis answers: an outage stalls this agent (its partitions' lag grows, faust stops
        fetching once its buffer is full) instead of dead-lettering decisions. Every Redis step is idempotent
        (cooldown, escalation and board writes are keyed by warning id), so a step cut off midway may run again."""
        delay = 0.1
        while True:
            try:
                result = step()
                return await result if inspect.isawaitable(result) else result
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                metrics.redis_retries.inc()
                log.warning("%s: Redis did not answer (%s); again in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def show(outputs: list[Output]) -> None:
        """Put warnings and interceptions on the console's board."""
        for out in outputs:
            if isinstance(out.value, Warning):
                profile = decode_profile(processor.lookup(subject_key(out.value.subject_id)))
                await board.record_warning(out.value, profile)
            elif out.topic.startswith("interception."):
                await board.record_interception(out.topic, out.value)

    def _dead(logical: str, event: EventT, reason: str, field: str | None = None) -> Output:
        msg = event.message
        kafka_ts = int(msg.timestamp * 1000) if msg.timestamp else None
        return Output("deadletter", event.key or b"",
                      dead_letter(logical, msg.partition, msg.offset, event.key, event.value, reason, field, kafka_ts))

    def ingest_handler(logical: str) -> Callable[[EventT], list[Output]]:
        def handle(event: EventT) -> list[Output]:
            msg = event.message
            kafka_ts = int(msg.timestamp * 1000) if msg.timestamp else None
            result = ingest(RawMessage(logical, msg.partition, msg.offset, event.key, event.value, kafka_ts),
                            processor.lookup)
            if result.dead is not None:
                return [Output("deadletter", event.key or b"", result.dead)]
            return [person_output(pe) for pe in result.events]
        return handle

    def highwater(tp: Any) -> int | None:
        try:
            return app.consumer.highwater(tp)
        except Exception:  # not fetched yet
            return None

    def committed(tp: Any) -> int | None:
        """The partition's committed offset: where a restart reads again from (None before the first)."""
        return app.consumer._committed_offset.get(tp)  # noqa: SLF001  (faust keeps no public one)

    def source_read(logical: str) -> Callable[[Any, list[Output]], None]:
        return lambda msg, outputs: progress.saw(f"{logical}/{msg.partition}", progress_ts(outputs), msg.offset)

    def derived_read(logical: str) -> Callable[[Any, list[Output]], None]:
        # the end offset is looked up only while the partition catches up, not on every record
        return lambda msg, _: processor.read_past(logical, msg.partition, msg.offset, lambda: highwater(msg.tp))

    for logical in SIGNAL_TOPICS:
        app.agent(topic(logical), name=f"ingest-{logical}")(guarded(logical, ingest_handler(logical),
                                                                    source_read(logical)))
    app.agent(topic("registry.subjects"), name="registry")(guarded(
        "registry.subjects", lambda event: processor.subject(decode_input("registry.subjects", event.value))))
    app.agent(topic("intel.indicators"), name="indicators")(guarded(
        "intel.indicators", lambda event: processor.indicator(decode_input("intel.indicators", event.value)),
        source_read("intel.indicators")))

    def person_handler(event: EventT) -> list[Output]:
        msg = event.message
        if event.key == MARKS_KEY:
            out = processor.person_marks(msg.partition, _marks_decoder.decode(event.value), channels, msg.offset,
                                         committed(msg.tp))
            metrics.decisions_waiting.labels(str(msg.partition)).set(processor.waiting.waiting(msg.partition))
            return out
        before = processor.late_decisions
        out = processor.person_event(_person_decoder.decode(event.value), msg.partition, msg.timestamp or None)
        if processor.late_decisions > before:
            metrics.late_decisions.inc(processor.late_decisions - before)
        return out

    def value_handler(event: EventT) -> list[Output]:
        if event.key == MARKS_KEY:
            msg = event.message
            processor.value_marks(msg.partition, _marks_decoder.decode(event.value), msg.offset)
            return []
        return processor.value_message(_value_msg_decoder.decode(event.value))

    app.agent(topic("yujing.events"), name="persons")(guarded("yujing.events", person_handler,
                                                              derived_read("yujing.events")))
    app.agent(topic("yujing.contacts"), name="values")(guarded("yujing.contacts", value_handler,
                                                               derived_read("yujing.contacts")))

    # The last mark sent per (topic, channel): only changes are sent, so an idle pipeline goes quiet. A partition
    # that moves finds its frontier in the `marks` table; after a rebalance everything is sent once again.
    sent_marks: dict[str, Mark] = {}
    # real topic name → logical, for the topics whose partitions are channels of the watermark
    marked_topics = {settings.topic(t): t
                     for t in (*SIGNAL_TOPICS, "intel.indicators", "yujing.events", "yujing.contacts")}

    def owned_marks() -> dict[str, list[Mark]]:
        """The marks of the channels this worker holds now, by the topic they go to."""
        out: dict[str, list[Mark]] = {"yujing.events": [], "yujing.contacts": []}
        for tp in app.consumer.assignment():
            logical = marked_topics.get(tp.topic)
            if logical in SIGNAL_TOPICS or logical == "intel.indicators":
                # not fetched yet (highwater None): not caught up either
                mark = progress.mark(f"{logical}/{tp.partition}", highwater(tp), committed(tp))
                out["yujing.events"].append(mark)
                if logical == "intel.indicators":
                    out["yujing.contacts"].append(mark)
            elif logical in ("yujing.events", "yujing.contacts"):
                m = processor.out_mark(logical, tp.partition, channels)
                out["yujing.events"].append(m)
                if logical == "yujing.events":
                    out["yujing.contacts"].append(m)
        return out

    @app.timer(interval=MARK_INTERVAL_S)
    async def send_marks() -> None:
        try:
            owned = owned_marks()
        except Exception as exc:  # the consumer is not up yet (or rebalancing): next tick
            log.debug("no marks this tick: %s", exc)
            return
        for dest, marks in owned.items():
            fresh = [m for m in marks if sent_marks.get(f"{dest}|{m.channel}") != m]
            if not fresh:
                continue
            value = msgspec.json.encode(Marks(marks=fresh))
            for partition in range(channels.partitions):
                await topic(dest).send(key=MARKS_KEY, value=value, partition=partition)
            for m in fresh:
                sent_marks[f"{dest}|{m.channel}"] = m

    async def on_moved(app_: Any, tps: Any, **_: Any) -> None:
        """Partitions moved: what was cached of them, and the marks this worker sent for them, are stale."""
        moved: dict[str, list[int]] = {}
        for tp in tps:
            if tp.topic in marked_topics:
                moved.setdefault(marked_topics[tp.topic], []).append(tp.partition)
        progress.forget(f"{t}/{p}" for t, ps in moved.items() for p in ps)
        for t in ("yujing.events", "yujing.contacts"):
            processor.forget_partitions(t, moved.get(t, []))
        sent_marks.clear()

    app.on_partitions_revoked.connect(on_moved)
    app.on_partitions_assigned.connect(on_moved)
    dispatcher = Dispatcher(routes, Cooldown(redis_client, redis_prefix, routes.cooldown_ms), processor.lookup,
                            EscalationStore(redis_client, redis_prefix))

    async def dispatch(event: EventT) -> list[Output]:
        before = dispatcher.suppressed, dispatcher.breaches
        outputs = await dispatcher.handle(_decision_decoder.decode(event.value))
        _count_dispatcher(before)
        return outputs

    async def escalation(event: EventT) -> list[Output]:
        outcome = decode_input("outcomes", event.value)
        metrics.outcomes.labels(outcome.channel, outcome.outcome).inc()
        if outcome.amount_saved_fen:
            metrics.saved_fen.inc(outcome.amount_saved_fen)
        before = dispatcher.suppressed, dispatcher.breaches
        outputs = await dispatcher.handle_outcome(outcome)
        _count_dispatcher(before)
        return outputs

    def _count_dispatcher(before: tuple[int, int]) -> None:
        if dispatcher.suppressed > before[0]:
            metrics.suppressed.inc(dispatcher.suppressed - before[0])
        if dispatcher.breaches > before[1]:
            metrics.breaches.inc(dispatcher.breaches - before[1])

    app.agent(topic("yujing.decisions"), name="dispatch")(guarded("yujing.decisions", dispatch))
    app.agent(topic("outcomes"), name="escalation")(guarded("outcomes", escalation))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 by definition
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4")

    queues = TaskQueues(redis_client, f"{redis_prefix}feed:", 0)

    @app.page("/console")
    async def console_page(web: Any, request: Any) -> Any:
        return web.html(page())

    @app.page("/console/state.json")
    async def console_json(web: Any, request: Any) -> Any:
        return web.json(await console_state(board, queues, redis_client, redis_prefix))

    @app.page("/console/explain/{warning_id}")
    async def console_explain(web: Any, request: Any, warning_id: str) -> Any:
        from ops.explain import gather, render  # a full scan of topics: off the event loop

        trail = await asyncio.get_running_loop().run_in_executor(None, gather, settings, warning_id)
        return web.text(render(trail), status=200 if trail.decision else 404)

    app.yujing_metrics = metrics  # type: ignore[attr-defined]  # for the console and tests in this process
    return app


def worker_model(settings: Settings) -> Model:
    """The model in the data folder; where there is none, train the default one first (once, under a lock)."""
    import fcntl

    folder = settings.model_path
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker starting now waits, then loads what the first trained
        if not (folder / META_FILE).exists():
            log.warning("no model in %s: training the default model first (a minute or two)", folder)
            train_model(folder)
    return load(folder)


def run_worker(settings: Settings, faust_args: list[str]) -> None:
    """Run a Faust worker of the app; extra arguments pass through to faust's `worker` command."""
    import sys

    try:
        model = worker_model(settings)
    except ModelMismatch as exc:
        raise SystemExit(f"yujing worker: {exc}") from None
    app = create_app(settings, model)
    args = list(faust_args)
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args = ["--loglevel", "info", *args]
    sys.argv = ["yujing", "worker", "--web-port", str(settings.web_port), "--web-bind", settings.bind_host, *args]
    app.main()
