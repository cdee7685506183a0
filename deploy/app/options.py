"""What the worker's app is configured from: faust's options, the watermark's channels, the core's policies."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faust

from deploy.config import Settings
from deploy.topics import broker_count, replication
from dispatch.review import ReviewPolicy, ReviewPolicyError, load_review_policy
from schemas.topics import SIGNAL_TOPICS
from schemas.units import HOUR_MS, MINUTE_MS
from streams.kafka_io import partition_counts
from streams.kafka_security import KafkaSecurity
from streams.person_state import StatePolicy
from streams.value_index import IndexPolicy
from streams.watermarks import Topology

# faust's own pages serve tables (identities, person states) and routing to anyone who asks: always off
CLOSED_PAGES = {"web_router_enabled": False, "web_tables_enabled": False, "web_graph_enabled": False,
                "web_stats_enabled": False, "web_metrics_enabled": False}


def faust_overrides(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Faust settings from `YUJING_FAUST_OPTIONS` (a JSON object), for tuning a deployment without code; faust's
    own pages stay closed."""
    raw = (os.environ if env is None else env).get("YUJING_FAUST_OPTIONS", "")
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"YUJING_FAUST_OPTIONS is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise SystemExit("YUJING_FAUST_OPTIONS must be a JSON object of faust settings")
    reopened = sorted(k for k in options if k in CLOSED_PAGES and options[k] != CLOSED_PAGES[k])
    if reopened:
        raise SystemExit(f"YUJING_FAUST_OPTIONS may not turn on {', '.join(reopened)}: those pages serve personal "
                         f"data without a login")
    return options


def faust_credentials(security: KafkaSecurity) -> dict[str, Any]:
    """faust.App options for a secured broker: its SASL credentials (over TLS or not), or its TLS context alone."""
    if security.sasl:
        return {"broker_credentials": faust.SASLCredentials(username=security.username, password=security.password,
                                                            ssl_context=security.ssl_context(),
                                                            mechanism=security.mechanism)}
    if security.tls:
        return {"broker_credentials": faust.SSLCredentials(security.ssl_context())}
    return {}


def faust_options(settings: Settings) -> dict[str, Any]:
    """The faust.App options of a worker: broker, RocksDB stores under the data folder, delivery and liveness."""
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
        # faust's own topics (the identity table's changelog, its leader topic) replicated as ours are
        topic_replication_factor=replication(broker_count(settings))[0],
        producer_acks=-1,  # acks=all: an effect is not sent until the broker has it
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        # A worker that dies (SIGKILL, lost machine) gives its partitions to the others after 10 s, not 60.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        **CLOSED_PAGES,
    )
    options |= faust_credentials(settings.kafka_security)
    if settings.worker_name:  # static membership: restarted under the same name, it rejoins without a wait
        options["consumer_group_instance_id"] = f"{settings.app_id}-{settings.worker_name}"
    return options | faust_overrides()


def topology(settings: Settings) -> Topology:
    """The channels of the watermark, from the partitions the topics have on the broker (else the settings)."""
    counts = partition_counts(settings, [*SIGNAL_TOPICS, "intel.indicators", "yujing.events"])
    return Topology(signal_partitions={t: counts.get(t, settings.signal_partitions) for t in SIGNAL_TOPICS},
                    indicator_partitions=counts.get("intel.indicators", settings.partitions),
                    partitions=counts.get("yujing.events", settings.partitions))


def policies(settings: Settings) -> tuple[IndexPolicy, StatePolicy]:
    """The index and state policies the settings ask for."""
    index = IndexPolicy(lookback_ms=settings.lookback_hours * HOUR_MS,
                        late_tolerance_ms=settings.late_tolerance_minutes * MINUTE_MS,
                        max_people=settings.index_max_people, fanout_threshold=settings.fanout_threshold)
    return index, StatePolicy(window_ms=settings.lookback_hours * HOUR_MS)


def review_policy(settings: Settings) -> ReviewPolicy:
    """The quick-assessment policy `YUJING_REVIEW_POLICY` names (none: nothing waits for an analyst)."""
    if not settings.review_policy:
        return ReviewPolicy("none", ())
    try:
        return load_review_policy(Path(settings.review_policy))
    except OSError as exc:
        raise SystemExit(f"YUJING_REVIEW_POLICY: cannot read {settings.review_policy}: {exc.strerror}") from None
    except ReviewPolicyError as exc:
        raise SystemExit(f"YUJING_REVIEW_POLICY {settings.review_policy}: {exc}") from None
