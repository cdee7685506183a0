"""Streaming a simulated city into the contract's topics with kafka-python, at any speed of event time."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Callable

import msgspec
from kafka import KafkaProducer

from deploy.config import Settings
from schemas.records import (
    DomainSignal,
    Indicator,
    PaymentSignal,
    Progress,
    Subject,
    TelecomSignal,
    progress_key,
)
from schemas.topics import COMPACTED_TOPICS, SIGNAL_TOPICS, SOURCE_TOPICS
from scorers.lab.city import City
from streams.kafka_security import client_options

# The simulated city's feed as a provider: when YUJING_PROGRESS_PRODUCERS lists it, it sends its progress to every
# partition of the input topics every PROGRESS_EVERY_S (docs/schemas.md).
FEED_PRODUCER = "city-feed"
PROGRESS_EVERY_S = 0.05  # every 20 ms made p99 no better on a saturated worker (docs/scaling.md, eighth step)


def contract_key(record: msgspec.Struct) -> bytes:
    """The message key the contract names for each input topic."""
    if isinstance(record, (TelecomSignal, DomainSignal)):
        return record.subscriber.encode()
    if isinstance(record, PaymentSignal):
        return record.payer_account.encode()
    if isinstance(record, Indicator):
        return f"{record.type}:{record.value}".encode()
    if isinstance(record, Subject):
        return record.subject_id.encode()
    raise TypeError(f"not an input record: {type(record).__name__}")


def feed_as_producer() -> str:
    """`YUJING_PROGRESS_PRODUCERS` for a pipeline whose one provider is the city feed: its word counts on every
    input topic."""
    return ";".join(f"{topic}={FEED_PRODUCER}" for topic in SOURCE_TOPICS)


def word_destinations(settings: Settings,
                      partitions_of: Callable[[str], Iterable[int] | None]) -> list[tuple[str, int]]:
    """Every partition (real topic, partition) of the input topics on which these settings count the city feed's
    word: where it gives it. `partitions_of` gives a real topic's partitions."""
    known = {t: sorted(partitions_of(settings.topic(t)) or ()) for t, ids in settings.producers.items()
             if FEED_PRODUCER in ids}
    if missing := [t for t, ps in known.items() if not ps]:
        raise RuntimeError(f"the feed cannot give its word on {missing}: no partitions (are the topics created?)")
    return [(settings.topic(t), p) for t, ps in known.items() for p in ps]


def progress_record(producer: str, ts: int) -> tuple[bytes, bytes]:
    """The key and value of a provider's progress record: every record it sends from now on has `ts` at least `ts`."""
    return progress_key(producer), msgspec.json.encode(Progress(producer=producer, progress_ts=ts))


def wait_for_identity(settings: Settings, subject_ids: set[str], timeout: float = 120.0) -> None:
    """Wait until the identity table's changelog holds every one of these people (the registry is loaded)."""
    from streams.kafka_io import read_table

    wanted = {f"subject:{s}".encode() for s in subject_ids}
    deadline = time.monotonic() + timeout
    while not wanted <= set(read_table(settings, "identity")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the identity table did not load the registry in {timeout:.0f}s (is a worker running?)")
        time.sleep(0.5)
    time.sleep(1.0)  # and every worker's replica of the global table has read it (it follows the changelog)


def stream_city(settings: Settings | None, city: City, speed: float = 0.0, out: Path | None = None,
                progress: Callable[[int, int], None] | None = None, registry_first: bool = False,
                at_first_signal: Callable[[], None] | None = None) -> dict[str, int]:
    """Send every record of the city (to Kafka when `settings` is given); `speed` × event time, 0 = flat out.

    With `registry_first`, the registry is loaded into the running pipeline before any signal is sent, as in a
    deployment where the registry is there long before the signals. Writes the ground truth (`truth.jsonl`) and
    the run's config into `out` when given. `at_first_signal` is called before the first record after the
    registry is sent (a bench's start). The feed sends its progress records to the topics where the settings count
    them (`word_destinations`).
    """
    producer, everywhere = None, []
    if settings is not None:
        # idempotent: a retry cannot put a record behind the feed's word on its partition
        producer = KafkaProducer(**client_options(settings), acks="all", linger_ms=20,
                                 batch_size=256 * 1024, compression_type=None, enable_idempotence=True,
                                 reconnect_backoff_max_ms=1000)  # kafka-python's backoff grows to 30 s otherwise
        # Every topic's partitions known before the first record: a send to a topic not yet known waits for
        # metadata, and a broker restarting under the feed failed it (the first indicator after a restart);
        # a known topic's records wait in the producer and are retried until the broker is back.
        for topic in (*SIGNAL_TOPICS, *COMPACTED_TOPICS):
            producer.partitions_for(settings.topic(topic))
        everywhere = word_destinations(settings, producer.partitions_for)
    counts: dict[str, int] = {}
    first_ts, t0, n, said_at = None, time.monotonic(), 0, 0.0
    registry: set[str] = set()

    def say_progress(ts: int) -> None:  # every record from now on has at least this time
        nonlocal said_at
        key, value = progress_record(FEED_PRODUCER, ts)
        for topic, p in everywhere:
            producer.send(topic, key=key, value=value, partition=p)  # type: ignore[union-attr]
        said_at = time.monotonic()

    try:
        for topic, rec in city.records():
            if topic == "registry.subjects":
                registry.add(rec.subject_id)  # type: ignore[attr-defined]
            elif registry_first and registry and producer is not None:
                producer.flush(120)
                wait_for_identity(settings, registry)  # type: ignore[arg-type]
                registry = set()
                t0 = time.monotonic()
            if at_first_signal is not None and topic != "registry.subjects":
                at_first_signal()
                at_first_signal = None
            n += 1
            counts[topic] = counts.get(topic, 0) + 1
            if topic != "registry.subjects":
                ts = rec.ts  # type: ignore[attr-defined]
                first_ts = ts if first_ts is None else first_ts
                due = t0 + (ts - first_ts) / 1000 / speed if speed > 0 else 0.0
                while True:  # the feed's word goes on while it waits for the record's time
                    if everywhere and time.monotonic() - said_at >= PROGRESS_EVERY_S:
                        say_progress(ts)
                    if (wait := due - time.monotonic()) <= 0:
                        break
                    time.sleep(min(wait, PROGRESS_EVERY_S) if everywhere else wait)
            if producer is not None:
                producer.send(settings.topic(topic), key=contract_key(rec), value=msgspec.json.encode(rec))  # type: ignore[union-attr]
            if progress is not None and n % 1_000 == 0:
                progress(n, counts.get("intel.indicators", 0))
        if everywhere and first_ts is not None:
            say_progress(ts + 1)  # the last word: nothing more is coming, so what waits for the last record can go
        if producer is not None:
            producer.flush(120)
    finally:
        if producer is not None:
            producer.close()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "truth.jsonl", "wb") as f:
            for ep in city.truth:
                f.write(msgspec.json.encode(ep) + b"\n")
        (out / "city.json").write_text(json.dumps(
            {"config": city.cfg.describe(), "counts": counts, "large_legit": city.large_legit,
             "retractions": [msgspec.to_builtins(r) for r in city.retractions],
             "keys_of": {ep.episode_id: city.person_keys(ep) for ep in city.truth},
             "resident_keys": sorted(city.resident_keys())}, indent=2, ensure_ascii=False))
    return counts
