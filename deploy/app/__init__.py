"""The worker: a Faust app composed from the pure stages and the adapters they are handed.

    signals.*          --ingest-->    yujing.events (key: person)      identity resolved via the registry
    registry.subjects  --registry-->  identity table; every worker follows all of it (its identity replica)
    intel.indicators   --indicators-> yujing.contacts (key: value)     + interception.account (multi-card control)
    yujing.events      --persons-->   persons table; yujing.contacts; yujing.triggers; yujing.decisions
    yujing.contacts    --values-->    values table (contact index + indicator); hits -> yujing.events
    yujing.decisions   --dispatch-->  warnings, dispatch.*, interception.payment
    outcomes           --escalation-> dispatch.* (the next step of an escalating route)
    interception.replies --bank-replies-> the console's stop-payments settled (banks' answers), metrics
    yujing.assessments --review-->   a held decision dispatched, dismissed (a false alarm on outcomes) or raised

The first four stages (signals, indicators, persons, values) are the hot path: read by the batch in a consumer
group of their own, with state in memory written to changelogs per checkpoint (`stream_reader.py`). Decisions
are taken in event-time order behind a watermark (streams/watermarks.py): the marks of the channels a worker
owns travel at the end of the envelopes it sends (`marks.py`, streams/envelope.py).
"""
from __future__ import annotations

import logging
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import faust
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge
from redis.exceptions import RedisError

from deploy.app.agent_loop import AgentLoop, until_broker_takes
from deploy.app.faust_commit import (
    commit_only_processed,
    fetch_stalled,
    flush_before_commit,
)
from deploy.app.faust_offsets import hand_on_in_order
from deploy.app.handlers import Handlers, show_on_board
from deploy.app.heap import HeapKeeper
from deploy.app.local_state import keep_if_clean, mark_clean
from deploy.app.loop_lag import watch_loop
from deploy.app.model import worker_model
from deploy.app.options import faust_options, policies, review_policy, topology
from deploy.app.pages import add_pages
from deploy.app.partitioned import ChunkedTable, PartitionedTable
from deploy.app.stream_reader import StreamReader
from deploy.config import Settings
from deploy.redis_client import connect
from deploy.topics import RETENTION_DAYS
from dispatch.cooldown import Cooldown
from dispatch.erased import ErasedSubjects
from dispatch.escalation import EscalationStore
from dispatch.review import ReviewStore
from dispatch.routing import load_routes
from dispatch.sms import forget_waiting
from dispatch.stage import Dispatcher
from dispatch.task_queue import TaskQueues, feed_prefix
from ops.board import OpsBoard
from ops.explain import gather
from ops.metrics import ConsumerLag, PipelineMetrics
from schemas.internal import Output
from schemas.records import encode, is_progress
from schemas.topics import ASSESSMENT_TOPIC
from schemas.units import MINUTE_MS
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.model import Model, ModelMismatch
from streams.envelope import ContactBatch, EventBatch, encode_envelope
from streams.identity_replica import IdentityReplica
from streams.person_state import decode_state, encode_state
from streams.processor import Processor
from streams.value_index import encode_stored
from streams.watermarks import SourceProgress, decode_pending, encode_pending

log = logging.getLogger(__name__)

RAW = {"key_serializer": "raw", "value_serializer": "raw"}
ENVELOPES = (EventBatch, ContactBatch)  # what an agent sends to the hot path's topics (an erasure)
ERASED_KEPT_S = RETENTION_DAYS["yujing.decisions"] * 86_400  # decisions about an erased person may be read so long
DISPATCH_PARALLEL = 64  # decisions dispatched at once (one at a time per person): each waits on Redis several times


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
    processor, replica, tables = _processor(app, settings, metrics)
    if model is not None:
        processor.on_person = Decider(model, model.tier_policy(), Ages(processor.lookup))
    redis_client = connect(settings.redis_url, **settings.redis_options())
    redis_prefix = settings.redis_prefix
    routes = load_routes()
    board = OpsBoard(redis_client, redis_prefix)
    queues = TaskQueues(redis_client, feed_prefix(redis_prefix), 0)

    review = ReviewStore(redis_client, redis_prefix)
    dispatcher = _dispatcher(settings, redis_client, routes, processor, metrics, board, queues, review)
    progress = SourceProgress(idle_after_s=settings.idle_after_ms / 1000, producers=settings.producers)
    max_ahead_ms = settings.max_ahead_minutes * MINUTE_MS
    handlers = Handlers(processor, topology(settings), progress, metrics, dispatcher, board,
                        latest_ms=lambda: int(time.time() * 1000) + max_ahead_ms)
    heap = HeapKeeper(observe_full=metrics.heap_full_collection.observe)
    reader = StreamReader(settings, processor, tables, handlers, metrics,
                          show=lambda outputs: show_on_board(board, processor.lookup, outputs),
                          on_checkpoint=heap.checkpointed)
    _watch(app, settings, registry, replica, reader)

    @app.task
    async def hot_path() -> None:
        heap.keep_full_passes_rare()
        await reader.run()

    @app.task
    async def loop_lag() -> None:
        await watch_loop(metrics.event_loop_lag.observe)

    @app.timer(10.0)
    async def unstall() -> None:
        fetch_stalled(app.consumer)

    @app.timer(15.0)
    async def review_queue() -> None:
        try:
            depth, oldest = await review.depth()
        except (RedisError, OSError) as exc:  # the next tick reads it again
            log.warning("review queue not read: %s", exc)
            return
        metrics.observe_review_queue(depth, oldest, int(time.time() * 1000))

    async def send(outputs: list[Output], timestamp: float | None) -> None:
        # Outputs carry the Kafka timestamp of the input they come from, so every hop down the chain knows when
        # the originating signal (or case element) reached Kafka: the end-to-end latency at the last hop. A
        # decision taken when a mark let it through carries its own event's.
        for out in outputs:
            origin = out.origin if out.origin is not None else timestamp
            value = encode_envelope(out.value) if isinstance(out.value, ENVELOPES) else encode(out.value)
            await until_broker_takes(out.topic, partial(topic(out.topic).send, key=out.key, value=value,
                                                        timestamp=origin))

    def agent(logical: str, name: str, handler: Any, parallel: int = 1,
              barrier: Callable[[Any], bool] = lambda event: False) -> None:
        loop = AgentLoop(logical, handler, send, counted=lambda event: metrics.events_in.labels(logical).inc(),
                         observed=lambda outputs, origin: metrics.observe_outputs(outputs, origin, time.time()),
                         show=lambda outputs: show_on_board(board, processor.lookup, outputs),
                         on_redis_retry=metrics.redis_retries.inc, parallel=parallel, barrier=barrier)
        app.agent(topic(logical), name=name)(_named(loop, logical))

    agent("registry.subjects", "registry", handlers.registry)
    agent("yujing.decisions", "dispatch", handlers.decision, parallel=DISPATCH_PARALLEL,
          barrier=lambda event: is_progress(event.key))  # the decider's progress: held decisions it releases
    agent("outcomes", "escalation", handlers.outcome)
    agent("interception.replies", "bank-replies", handlers.bank_reply)
    agent("yujing.assessments", "review", handlers.assessment)
    async def publish_assessment(key: bytes, value: bytes) -> None:
        sent = await until_broker_takes(ASSESSMENT_TOPIC, partial(topic(ASSESSMENT_TOPIC).send, key=key, value=value))
        await sent  # the analyst is answered once the broker holds their word

    add_pages(app, registry, board, queues, redis_client, redis_prefix,
              lambda warning_id: gather(settings, warning_id), settings.allowed_hosts.split(","), review,
              publish_assessment)
    app.yujing_metrics = metrics  # type: ignore[attr-defined]  # for the console and tests in this process
    return app


def _dispatcher(settings: Settings, redis_client: aioredis.Redis | aioredis.RedisCluster, routes: Any,
                processor: Processor, metrics: PipelineMetrics, board: OpsBoard, queues: TaskQueues,
                review: ReviewStore) -> Dispatcher:
    """The dispatch stage over Redis: cooldowns, escalations, the review queue and the erasers of every store."""
    redis_prefix = settings.redis_prefix
    erasers = [("console board", lambda subject_id, phones: board.forget(subject_id)),  # each on its own
               ("feed queues", lambda subject_id, phones: queues.forget(subject_id)),
               ("SMS adapter", lambda subject_id, phones: forget_waiting(redis_client, redis_prefix, phones))]
    return Dispatcher(routes, Cooldown(redis_client, redis_prefix, routes.cooldown_ms), processor.lookup,
                      EscalationStore(redis_client, redis_prefix), on_suppressed=metrics.suppressed.inc,
                      on_breach=lambda station, channel: metrics.breaches.labels(station, channel).inc(),
                      erasers=erasers, erased=ErasedSubjects(redis_client, redis_prefix, ERASED_KEPT_S),
                      on_erase_failed=lambda store: metrics.erasure_failures.labels(store).inc(),
                      review=review, review_policy=review_policy(settings),
                      on_review=metrics.observe_review)


def _processor(app: faust.App, settings: Settings,
               metrics: PipelineMetrics) -> tuple[Processor, IdentityReplica, dict[str, PartitionedTable]]:
    """The processor over the hot path's tables, the worker's replica of the identity table, and those tables."""
    index_policy, state_policy = policies(settings)
    # The registry agent writes the identity table (a Faust table); every worker reads all of it through its own
    # replica of the changelog (streams/identity_replica.py): faust's GlobalTable replicas missed other workers'
    # writes.
    identity = app.Table("identity", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    replica = IdentityReplica()
    changelog = f"{settings.app_id}-identity-changelog"
    replica.load(settings, changelog)

    @app.task
    async def follow_identity() -> None:
        await replica.follow(settings, changelog)

    tables = {"persons": PartitionedTable("persons", encode_state, decode_state),
              "pending": ChunkedTable("pending", encode_pending, decode_pending),
              "values": PartitionedTable("values", encode_stored),
              **{name: PartitionedTable(name) for name in ("marks", "value-marks")}}
    processor = Processor(identity=identity, directory=replica, persons=tables["persons"], values=tables["values"],
                          index_policy=index_policy, state_policy=state_policy, pending=tables["pending"],
                          marks=tables["marks"], value_frontiers=tables["value-marks"],
                          on_late=metrics.late_decisions.inc)
    return processor, replica, tables


def _watch(app: faust.App, settings: Settings, registry: CollectorRegistry, replica: IdentityReplica,
           reader: StreamReader) -> None:
    """The gauges read at scrape time: the identity replica's size, the consumer groups' lag."""
    keys = Gauge("yujing_identity_keys", "Keys in this worker's replica of the identity table", registry=registry)
    keys.set_function(lambda: len(replica))
    registry.register(ConsumerLag(lambda: {**app.monitor.tp_end_offsets, **reader.end_offsets()},
                                  lambda: {**app.monitor.tp_committed_offsets, **reader.committed_offsets()},
                                  lambda real: real[len(settings.topic_prefix):]))


def _named(loop: AgentLoop, logical: str) -> Any:
    async def body(stream: Any) -> None:
        await loop(stream)
    body.__name__ = logical.replace(".", "_")
    return body


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
