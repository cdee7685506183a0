"""The worker: a Faust app composed from the pure stages and the adapters they are handed.

    signals.*          --ingest-->    yujing.events (key: person)      identity resolved via the registry
    registry.subjects  --registry-->  identity table; every worker follows all of it (its identity replica)
    intel.indicators   --indicators-> yujing.contacts (key: value)     + interception.account (multi-card control)
    yujing.events      --persons-->   persons table; yujing.contacts; yujing.triggers; yujing.decisions
    yujing.contacts    --values-->    values table (contact index + indicator); hits -> yujing.events
    yujing.decisions   --dispatch-->  warnings, dispatch.*, interception.payment
    outcomes           --escalation-> dispatch.* (the next step of an escalating route)

Decisions are taken in event-time order behind a watermark (streams/watermarks.py): every worker sends the
marks of the channels it owns (source partitions it reads, person and value partitions it holds) to every
partition those channels write to, from a timer, after the records they cover (`marks.py`).
"""
from __future__ import annotations

import logging
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import faust
import msgspec
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge

from deploy.app.agent_loop import AgentLoop, until_broker_takes
from deploy.app.faust_commit import commit_only_processed, flush_before_commit
from deploy.app.faust_offsets import hand_on_in_order
from deploy.app.handlers import Handlers, show_on_board
from deploy.app.local_state import keep_if_clean, mark_clean
from deploy.app.marks import MarkDeduper, owned_marks
from deploy.app.model import worker_model
from deploy.app.options import faust_options, policies, topology
from deploy.app.pages import add_pages
from deploy.config import Settings
from dispatch.cooldown import Cooldown
from dispatch.escalation import EscalationStore
from dispatch.routing import load_routes
from dispatch.stage import Dispatcher
from dispatch.task_queue import TaskQueues
from ops.board import OpsBoard
from ops.explain import gather
from ops.metrics import ConsumerLag, PipelineMetrics
from schemas.internal import Output
from schemas.records import encode
from schemas.topics import SIGNAL_TOPICS
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.model import Model, ModelMismatch
from streams.identity_replica import IdentityReplica
from streams.processor import Processor
from streams.watermarks import MARKS_KEY, Marks, SourceProgress

log = logging.getLogger(__name__)

RAW = {"key_serializer": "raw", "value_serializer": "raw"}
MARK_INTERVAL_S = 0.1  # how often a worker sends its channels' marks (a decision waits about this long, twice)
MARKED_TOPICS = (*SIGNAL_TOPICS, "intel.indicators", "yujing.events", "yujing.contacts")


def create_app(settings: Settings, model: Model | None = None, registry: CollectorRegistry | None = None) -> faust.App:
    """A Faust app wired to the settings' broker, data folder and topics, with every agent registered.

    With a model, the persons agent scores and decides (`yujing.decisions`); without, it only keeps state.
    Metrics go to `registry` (a new one by default) and are served at `/metrics` on the web port.
    """
    hand_on_in_order()  # else a restart can commit records it never processed (deploy/app/faust_offsets.py)
    commit_only_processed()  # else a commit can pass one record at its head never acknowledged (faust_commit.py)
    flush_before_commit()  # else a commit can come before the table writes of what it commits (faust_commit.py)
    app = faust.App(settings.app_id, **faust_options(settings))
    topics: dict[str, faust.TopicT] = {}

    def topic(logical: str) -> faust.TopicT:
        if logical not in topics:
            topics[logical] = app.topic(settings.topic(logical), **RAW)
        return topics[logical]

    registry = registry if registry is not None else CollectorRegistry()
    metrics = PipelineMetrics(registry)
    processor, replica = _processor(app, settings, metrics)
    if model is not None:
        processor.on_person = Decider(model, model.tier_policy(), Ages(processor.lookup))
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    redis_prefix = f"{settings.topic_prefix}{settings.app_id}:"
    routes = load_routes()
    dispatcher = Dispatcher(routes, Cooldown(redis_client, redis_prefix, routes.cooldown_ms), processor.lookup,
                            EscalationStore(redis_client, redis_prefix), on_suppressed=metrics.suppressed.inc,
                            on_breach=metrics.breaches.inc)
    _watch(app, settings, registry, replica)
    handlers = Handlers(processor, topology(settings), SourceProgress(), metrics, lambda tp: _highwater(app, tp),
                        lambda tp: _committed(app, tp), dispatcher)
    board = OpsBoard(redis_client, redis_prefix)

    async def send(outputs: list[Output], timestamp: float | None) -> None:
        # Outputs carry the Kafka timestamp of the input they come from, so every hop down the chain knows when
        # the originating signal (or case element) reached Kafka: the end-to-end latency at the last hop. A
        # decision taken when a mark let it through carries its own event's.
        for out in outputs:
            origin = out.origin if out.origin is not None else timestamp
            await until_broker_takes(out.topic, partial(topic(out.topic).send, key=out.key, value=encode(out.value),
                                                        timestamp=origin))

    def agent(logical: str, name: str, handler: Any, sent: Any = None) -> None:
        loop = AgentLoop(logical, handler, send, counted=lambda event: _count(metrics, logical, event), sent=sent,
                         observed=lambda outputs, origin: metrics.observe_outputs(outputs, origin, time.time()),
                         show=lambda outputs: show_on_board(board, processor.lookup, outputs),
                         on_redis_retry=metrics.redis_retries.inc)
        app.agent(topic(logical), name=name)(_named(loop, logical))

    for logical in SIGNAL_TOPICS:
        agent(logical, f"ingest-{logical}", handlers.ingest(logical), handlers.source_read(logical))
    agent("registry.subjects", "registry", handlers.registry)
    agent("intel.indicators", "indicators", handlers.indicator, handlers.source_read("intel.indicators"))
    agent("yujing.events", "persons", handlers.person, handlers.derived_read("yujing.events"))
    agent("yujing.contacts", "values", handlers.value, handlers.derived_read("yujing.contacts"))
    agent("yujing.decisions", "dispatch", handlers.decision)
    agent("outcomes", "escalation", handlers.outcome)
    _send_marks(app, settings, handlers, topic)
    add_pages(app, registry, board, TaskQueues(redis_client, f"{redis_prefix}feed:", 0), redis_client, redis_prefix,
              lambda warning_id: gather(settings, warning_id))
    app.yujing_metrics = metrics  # type: ignore[attr-defined]  # for the console and tests in this process
    return app


def _processor(app: faust.App, settings: Settings, metrics: PipelineMetrics) -> tuple[Processor, IdentityReplica]:
    """The processor over the app's tables, and the worker's replica of the identity table it reads through."""
    # Tables hold bytes under bytes keys (faust then stores both raw); values are msgspec-encoded records.
    raw_table = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
    index_policy, state_policy = policies(settings)
    # The registry agent writes the identity table; every worker reads all of it through its own replica of the
    # changelog (streams/identity_replica.py): faust's GlobalTable replicas missed other workers' writes.
    identity = app.Table("identity", **raw_table)
    replica = IdentityReplica()
    changelog = f"{settings.app_id}-identity-changelog"
    replica.load(settings.kafka_bootstrap, changelog)

    @app.task
    async def follow_identity() -> None:
        await replica.follow(settings.kafka_bootstrap, changelog)

    processor = Processor(identity=identity, directory=replica,
                          persons=app.Table("persons", **raw_table), values=app.Table("values", **raw_table),
                          index_policy=index_policy, state_policy=state_policy,
                          pending=app.Table("pending", **raw_table), marks=app.Table("marks", **raw_table),
                          on_late=metrics.late_decisions.inc)
    return processor, replica


def _watch(app: faust.App, settings: Settings, registry: CollectorRegistry, replica: IdentityReplica) -> None:
    """The gauges read at scrape time: the identity replica's size, the consumer group's lag."""
    keys = Gauge("yujing_identity_keys", "Keys in this worker's replica of the identity table", registry=registry)
    keys.set_function(lambda: len(replica))
    registry.register(ConsumerLag(lambda: app.monitor.tp_end_offsets, lambda: app.monitor.tp_committed_offsets,
                                  lambda real: real[len(settings.topic_prefix):]))


def _send_marks(app: faust.App, settings: Settings, handlers: Handlers, topic: Any) -> None:
    """Send the marks of the channels this worker holds, on a timer; after a rebalance, all of them again."""
    logical_of = {settings.topic(t): t for t in MARKED_TOPICS}
    dedupe = MarkDeduper()

    @app.timer(interval=MARK_INTERVAL_S)
    async def send_marks() -> None:
        try:
            owned = owned_marks(app.consumer.assignment(), logical_of, handlers.progress, handlers.processor,
                                handlers.channels, handlers.highwater, handlers.committed)
        except Exception as exc:  # the consumer is not up yet (or rebalancing): next tick
            log.debug("no marks this tick: %s", exc)
            return
        for dest, marks in owned.items():
            fresh = dedupe.fresh(dest, marks)
            if fresh:
                value = msgspec.json.encode(Marks(marks=fresh))
                for partition in range(handlers.channels.partitions):
                    await topic(dest).send(key=MARKS_KEY, value=value, partition=partition)
                dedupe.sent(dest, fresh)

    async def on_moved(app_: Any, tps: Any, **_: Any) -> None:
        """Partitions moved: what was cached of them, and the marks this worker sent for them, are stale."""
        moved: dict[str, list[int]] = {}
        for tp in tps:
            if tp.topic in logical_of:
                moved.setdefault(logical_of[tp.topic], []).append(tp.partition)
        handlers.progress.forget(f"{t}/{p}" for t, ps in moved.items() for p in ps)
        for t in ("yujing.events", "yujing.contacts"):
            handlers.processor.forget_partitions(t, moved.get(t, []))
        dedupe.forget()

    app.on_partitions_revoked.connect(on_moved)
    app.on_partitions_assigned.connect(on_moved)


def _count(metrics: PipelineMetrics, logical: str, event: Any) -> None:
    if event.key != MARKS_KEY:  # marks are the workers' bookkeeping, not records
        metrics.events_in.labels(logical).inc()


def _named(loop: AgentLoop, logical: str) -> Any:
    async def body(stream: Any) -> None:
        await loop(stream)
    body.__name__ = logical.replace(".", "_")
    return body


def _highwater(app: faust.App, tp: Any) -> int | None:
    try:
        return app.consumer.highwater(tp)
    except Exception:  # not fetched yet
        return None


def _committed(app: faust.App, tp: Any) -> int | None:
    """The partition's committed offset: where a restart reads again from (None before the first)."""
    return app.consumer._committed_offset.get(tp)  # noqa: SLF001  (faust keeps no public one)


def run_worker(settings: Settings, faust_args: list[str]) -> None:
    """Run a Faust worker of the app; extra arguments pass through to faust's `worker` command."""
    try:
        model = worker_model(settings)
    except ModelMismatch as exc:
        raise SystemExit(f"yujing worker: {exc}") from None
    app = create_app(settings, model)
    args = list(faust_args)
    if not any(a.startswith(("-l", "--loglevel")) for a in args):
        args = ["--loglevel", "info", *args]
    sys.argv = ["yujing", "worker", "--web-port", str(settings.web_port), "--web-bind", settings.bind_host, *args]
    appdir, tabledir = Path(app.conf.appdir), Path(app.conf.tabledir)
    keep_if_clean(appdir, tabledir)
    try:
        app.main()
    except SystemExit as exc:
        if exc.code in (0, None):
            mark_clean(appdir)
        raise
    mark_clean(appdir)
