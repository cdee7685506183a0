"""The pipeline's Prometheus metrics (prometheus-client), on a registry handed in: fresh per test, one per process.

Names carry the `yujing_` prefix and base units (`_seconds`, `_total`); label values are bounded (topic, tier,
channel, fraud type, station, outcome, reason category), never a phone number, account or person.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.internal import Decision
from schemas.records import (
    DeadLetter,
    FraudWarning,
    PaymentInterception,
    PhoneTask,
    SmsTask,
    VisitTask,
)

# Processing latency: 1 ms to 15 min (a backlog). Event-time lag reaches hours on a replay, so it gets longer buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                   300.0, 900.0)
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86_400.0)
INTERCEPTION_KINDS = {"interception.payment": "payment", "interception.account": "account",
                      "interception.domain": "domain", "interception.number": "number"}
CHANNELS = {"dispatch.sms": "sms", "dispatch.phone": "phone", "dispatch.visit": "visit"}


def reason_category(dead: DeadLetter) -> str:
    """A bounded label for a dead letter's free-text reason."""
    reason = dead.reason
    for prefix, label in (("internal error", "internal_error"), ("empty message", "empty"), ("not UTF-8", "not_utf8"),
                          ("not JSON", "not_json"), ("JSON nested", "not_json")):
        if reason.startswith(prefix):
            return label
    if "exceeds" in reason and "byte limit" in reason:
        return "too_large"
    return "invalid_field" if dead.field else "invalid_record"


class PipelineMetrics:
    """Every counter and histogram a worker exposes, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_in = Counter("yujing_events_in_total", "Records read, by logical topic", ["topic"],
                                 registry=registry)
        self.progress_records = Counter(
            "yujing_progress_records_total",
            "Providers' progress records read (not counted in yujing_events_in_total), by topic; counted=no: from a "
            "producer YUJING_PROGRESS_PRODUCERS does not list for the topic, ignored", ["topic", "counted"],
            registry=registry)
        self.progress_producers = Gauge(
            "yujing_progress_producers", "Providers listed in YUJING_PROGRESS_PRODUCERS, by topic and whether this "
            "worker heard their word within the idle time (live=no: its partitions wait for the idle time again)",
            ["topic", "live"], registry=registry)
        self.deadletters = Counter("yujing_deadletters_total", "Records dead-lettered, by topic and reason category",
                                   ["topic", "reason"], registry=registry)
        self.hits = Counter("yujing_indicator_hits_total",
                            "People found in contact with a case element: forward, reverse (mined back), fanout",
                            ["mode"], registry=registry)
        self.decisions = Counter("yujing_decisions_total", "Scorer decisions (a rise or a further transfer)",
                                 ["tier"], registry=registry)
        self.warnings = Counter("yujing_warnings_total", "Warnings issued", ["tier", "fraud_type"], registry=registry)
        self.dispatches = Counter("yujing_dispatches_total", "Dispatch tasks queued, by channel and tier",
                                  ["channel", "tier"], registry=registry)
        self.tasks = Counter("yujing_tasks_total", "Call and visit tasks queued, by station", ["channel", "station"],
                             registry=registry)
        self.interceptions = Counter("yujing_interceptions_total", "Interception requests, by kind", ["kind"],
                                     registry=registry)
        self.stop_payment_fen = Counter("yujing_stop_payment_requested_fen_total",
                                        "Amount of the transfers a stop-payment was requested for (fen)",
                                        registry=registry)
        self.bank_replies = Counter("yujing_stop_payment_replies_total",
                                    "Banks' answers to stop-payment requests (held, released, too_late, refused)",
                                    ["reply"], registry=registry)
        self.held_fen = Counter("yujing_stop_payment_held_fen_total",
                                "Amounts banks report held on stop-payment requests (fen)", registry=registry)
        self.review = Counter("yujing_review_decisions_total",
                              "Decisions held for an analyst and what became of them: held, confirmed, dismissed, "
                              "raised, timed_out (dispatched as routed), late (assessed after it was taken)",
                              ["event", "tier", "fraud_type"], registry=registry)
        self.review_seconds = Histogram("yujing_review_assessment_seconds",
                                        "From holding a decision to its analyst's assessment (wall clock)",
                                        buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200), registry=registry)
        self.review_waiting = Gauge("yujing_review_waiting", "Decisions waiting for an analyst", registry=registry)
        self.review_oldest = Gauge("yujing_review_oldest_waiting_seconds",
                                   "How long the longest-waiting decision has waited for an analyst (wall clock; 0: "
                                   "none waits)", registry=registry)
        self.suppressed = Counter("yujing_cooldown_suppressed_total", "Warnings held back by the cooldown",
                                  registry=registry)
        self.breaches = Counter("yujing_sla_breaches_total", "Dispatch steps whose deadline passed unanswered, by "
                                "the person's police station and the step's channel", ["station", "channel"],
                                registry=registry)
        self.erasure_failures = Counter("yujing_erasure_failures_total",
                                        "Stores an erasure did not reach (a failure other than Redis away)", ["store"],
                                        registry=registry)
        self.outcomes = Counter("yujing_outcomes_total", "Outcomes reported back", ["channel", "outcome"],
                                registry=registry)
        self.saved_fen = Counter("yujing_outcome_saved_fen_total",
                                 "Amounts reported saved by dissuasion or a stopped payment (fen)", registry=registry)
        self.redis_retries = Counter("yujing_redis_retries_total",
                                     "Steps retried because Redis did not answer (the agent waits, nothing is dropped)",
                                     registry=registry)
        self.late_decisions = Counter(
            "yujing_decisions_late_total",
            "Events decided on arrival because their partition's watermark had already passed them (out of order)",
            registry=registry)
        self.decisions_waiting = Gauge("yujing_decisions_waiting",
                                       "Decisions waiting for the watermark, per person partition", ["partition"],
                                       registry=registry)
        self.hot_path_seconds = Counter(
            "yujing_hot_path_seconds_total",
            "Wall time of the hot path's loop by phase: waiting for records (fetch); working on them (process, "
            "with the turns it gives the worker's other tasks and its sends); handing outputs to the producer "
            "(send); taking a checkpoint, which is then written in the background (checkpoint). Fetch near nil: "
            "the worker is saturated",
            ["phase"], registry=registry)
        self.event_loop_lag = Histogram(
            "yujing_event_loop_lag_seconds",
            "How late a 10 ms sleep on the worker's event loop woke: whatever holds the loop (a garbage collection, "
            "a long step) holds the hot path and every agent alike",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.heap_full_collection = Histogram(
            "yujing_heap_full_collection_seconds",
            "A full garbage collection over the worker's heap, frozen between them (one every 10 minutes): the loop "
            "waits for it", buckets=LATENCY_BUCKETS, registry=registry)
        self.signal_to_warning = Histogram(
            "yujing_signal_to_warning_seconds",
            "Kafka timestamp of the signal (or case element) behind a warning to the warning sent",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.transfer_to_stop = Histogram(
            "yujing_transfer_to_stop_payment_seconds",
            "Kafka timestamp of the payment signal to its stop-payment request sent",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.event_to_warning = Histogram(
            "yujing_event_time_to_warning_seconds",
            "Event time (ts) of the triggering event to the warning sent; hours on a replay of old data",
            buckets=LAG_BUCKETS, registry=registry)

    def observe_review(self, event: str, decision: Decision | None, wait_ms: int | None) -> None:
        """One review event of a decision (None: not known any more), with the analyst's time where there is one."""
        tier, fraud_type = (decision.tier, decision.fraud_type) if decision is not None else ("unknown", "unknown")
        self.review.labels(event, tier, fraud_type).inc()
        if wait_ms is not None:
            self.review_seconds.observe(max(0, wait_ms) / 1000)

    def observe_review_queue(self, depth: int, oldest_ms: int | None, now_ms: int) -> None:
        """The review queue's depth and its longest wait, as read from Redis."""
        self.review_waiting.set(depth)
        self.review_oldest.set(max(0, now_ms - oldest_ms) / 1000 if oldest_ms is not None else 0)

    def observe_outputs(self, outputs: Iterable[object], origin_s: float | None, now_s: float) -> None:
        """Count what one input made the worker send; `origin_s` is the Kafka timestamp it descends from."""
        for out in outputs:
            topic, value = out.topic, out.value  # type: ignore[attr-defined]
            if topic == "warnings" and isinstance(value, FraudWarning):
                self.warnings.labels(value.tier, value.fraud_type).inc()
                if origin_s is not None:
                    self.signal_to_warning.observe(max(0.0, now_s - origin_s))
                self.event_to_warning.observe(max(0.0, now_s - value.ts / 1000))
            elif topic in CHANNELS:
                assert isinstance(value, (SmsTask, PhoneTask, VisitTask))
                self.dispatches.labels(CHANNELS[topic], value.tier).inc()
                if not isinstance(value, SmsTask):
                    self.tasks.labels(CHANNELS[topic], value.station_id).inc()
            elif topic in INTERCEPTION_KINDS:
                self.interceptions.labels(INTERCEPTION_KINDS[topic]).inc()
                if isinstance(value, PaymentInterception):
                    self.stop_payment_fen.inc(value.amount_fen)
                    if origin_s is not None:
                        self.transfer_to_stop.observe(max(0.0, now_s - origin_s))
            elif topic == "deadletter" and isinstance(value, DeadLetter):
                self.deadletters.labels(value.topic, reason_category(value)).inc()
            elif topic == "yujing.triggers":
                if getattr(value, "cause", None) == "indicator_hit":
                    self.hits.labels(getattr(value, "mode", "forward")).inc()
            elif topic == "yujing.decisions" and isinstance(value, Decision):  # not the decider's progress
                self.decisions.labels(value.tier).inc()


class ConsumerLag(Collector):
    """Consumer lag per topic and partition, read at scrape time from Faust's monitor (end - committed)."""

    def __init__(self, end_offsets: Callable[[], Mapping], committed: Callable[[], Mapping],
                 logical: Callable[[str], str]) -> None:
        self._end, self._committed, self._logical = end_offsets, committed, logical

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The lag gauge."""
        family = GaugeMetricFamily("yujing_consumer_lag_messages", "Messages not yet committed, per partition",
                                   labels=["topic", "partition"])
        committed = dict(self._committed() or {})
        for tp, end in sorted(dict(self._end() or {}).items()):
            done = committed.get(tp)
            if done is not None:
                family.add_metric([self._logical(tp.topic), str(tp.partition)], max(0, end - done))
        yield family


def scrape_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample_quantile(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
                    q: float) -> float | None:
    """The q-quantile of histogram `name` in scraped samples, its buckets summed over every other label."""
    buckets: dict[float, float] = {}
    for (n, labels), v in samples.items():
        if n == f"{name}_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    return histogram_quantile(q, buckets)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram {upper bound: count}, interpolated as Prometheus does."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower  # beyond the last finite bucket: its bound is the best answer
            return lower + (le - lower) * (rank - below) / max(buckets[le] - below, 1e-12)
        lower, below = le, buckets[le]
    return lower
