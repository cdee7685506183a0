"""The Faust app: thin agents that decode, call the pure stages, and send.

    signals.*          --ingest-->    yujing.events (key: person)      identity resolved via the registry
    registry.subjects  --registry-->  identity (global table)
    intel.indicators   --indicators-> yujing.contacts (key: value)     + interception.account (multi-card control)
    yujing.events      --persons-->   persons table; yujing.contacts; yujing.triggers
    yujing.contacts    --values-->    values table (contact index + indicator); hits -> yujing.events
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
from faust.types import EventT
import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
from streams.person_state import StatePolicy
from streams.processor import Output, Processor, person_output
from streams.value_index import IndexPolicy
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
    app = faust.App(settings.app_id, **(options | faust_overrides()))
    topics: dict[str, faust.TopicT] = {}

    def topic(logical: str) -> faust.TopicT:
        if logical not in topics:
            topics[logical] = app.topic(settings.topic(logical), **RAW)
        return topics[logical]

    # Tables hold bytes under bytes keys (faust then stores both raw); values are msgspec-encoded records.
    raw_table = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
    index_policy, state_policy = policies(settings)
    # Every worker reads every partition of the identity changelog, its own included: with faust's defaults a
    # worker missed the registry records another worker wrote (the scale-out test showed people keyed by line).
    identity = app.GlobalTable("identity", synchronize_all_active_partitions=True, **raw_table)
    processor = Processor(identity=identity,
                          persons=app.Table("persons", **raw_table), values=app.Table("values", **raw_table),
                          index_policy=index_policy, state_policy=state_policy)
    if model is not None:
        processor.on_person = Decider(model, TierPolicy.load(), Ages(processor.lookup))

    routes = load_routes()
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    redis_prefix = f"{settings.topic_prefix}{settings.app_id}:"
    board = OpsBoard(redis_client, redis_prefix)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = PipelineMetrics(registry)
    registry.register(ConsumerLag(lambda: app.monitor.tp_end_offsets, lambda: app.monitor.tp_committed_offsets,
                                  lambda real: real[len(settings.topic_prefix):]))

    async def send(outputs: list[Output], timestamp: float | None) -> None:
        # Outputs carry the Kafka timestamp of the input they come from, so every hop down the chain knows when
        # the originating signal (or case element) reached Kafka: the end-to-end latency at the last hop.
        for out in outputs:
            await topic(out.topic).send(key=out.key, value=encode(out.value), timestamp=timestamp)

    def guarded(logical: str, handler: Callable[[EventT], Any]) -> Callable[[Any], Any]:
        """Run `handler` on every event and send its outputs; a failure dead-letters that event, nothing else."""
        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                msg = event.message
                metrics.events_in.labels(logical).inc()
                try:
                    outputs = handler(event)
                    if inspect.isawaitable(outputs):
                        outputs = await outputs
                except InvalidRecord as exc:
                    outputs = [_dead(logical, event, exc.reason, exc.field)]
                except Exception as exc:  # a bug on one record must not stop the stream
                    log.exception("%s failed on partition %s offset %s", logical, msg.partition, msg.offset)
                    outputs = [_dead(logical, event, f"internal error: {type(exc).__name__}: {exc}"[:500])]
                origin = msg.timestamp or None
                await send(outputs, origin)
                metrics.observe_outputs(outputs, origin, time.time())
                await show(outputs)
        agent.__name__ = logical.replace(".", "_")
        return agent

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

    for logical in SIGNAL_TOPICS:
        app.agent(topic(logical), name=f"ingest-{logical}")(guarded(logical, ingest_handler(logical)))
    app.agent(topic("registry.subjects"), name="registry")(guarded(
        "registry.subjects", lambda event: processor.subject(decode_input("registry.subjects", event.value))))
    app.agent(topic("intel.indicators"), name="indicators")(guarded(
        "intel.indicators", lambda event: processor.indicator(decode_input("intel.indicators", event.value))))
    app.agent(topic("yujing.events"), name="persons")(guarded(
        "yujing.events", lambda event: processor.person_event(_person_decoder.decode(event.value))))
    app.agent(topic("yujing.contacts"), name="values")(guarded(
        "yujing.contacts", lambda event: processor.value_message(_value_msg_decoder.decode(event.value))))
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
