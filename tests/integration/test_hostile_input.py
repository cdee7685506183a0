"""A hostile run: 10,000 records on each contract input topic (signals, indicators, registry, outcomes), about
two in three bent one way or another, through a running worker. Every bent record ends in `deadletter` with a
reason, no good one does, the worker neither crashes nor restarts, and no shared clock moves past the wall clock."""
from __future__ import annotations

import json
import random
import time
from typing import Any, Callable

import msgspec
from kafka import KafkaProducer

from deploy.config import Settings
from deploy.redis_client import connect_sync
from deploy.workers import WorkerProcess
from dispatch.escalation import clock_key
from schemas.records import DeadLetter
from streams.kafka_io import consume
from streams.kafka_security import client_options

PER_TOPIC = 10_000
HOUR = 3_600_000


def _bases(now: int) -> dict[str, Callable[[int], dict[str, Any]]]:
    """A valid record of each topic, numbered `i`, an hour or so old."""
    ts = lambda i: now - HOUR - i  # noqa: E731
    return {
        "signals.telecom": lambda i: {"event_id": f"c{i}", "ts": ts(i), "kind": "call", "direction": "in",
                                      "subscriber": f"+86138{i:08d}", "counterpart": f"+86170{i:08d}",
                                      "duration_s": 60},
        "signals.payment": lambda i: {"event_id": f"p{i}", "ts": ts(i), "transfer_id": f"t{i}", "status": "initiated",
                                      "payer_account": f"6222{i:012d}", "payee_account": f"6217{i:012d}",
                                      "payee_bank": "ICBC", "amount_fen": 10_000 + i, "channel": "mobile"},
        "signals.domain": lambda i: {"event_id": f"d{i}", "ts": ts(i), "subscriber": f"+86138{i:08d}",
                                     "kind": "dns", "domain": f"shop-{i}.example.com"},
        "intel.indicators": lambda i: {"type": "domain", "value": f"refund-{i}.top", "action": "add",
                                       "fraud_type": "fake_customer_service", "confidence": 0.9,
                                       "source": f"case-{i}", "ts": ts(i)},
        "registry.subjects": lambda i: {"subject_id": f"S{i}", "phones": [f"+86139{i:08d}"],
                                        "accounts": [f"6228{i:012d}"], "birth_year": 1950 + i % 50,
                                        "grid_id": f"G{i % 40:04d}", "station_id": f"ST{i % 7}",
                                        "name_masked": "王*", "ts": ts(i)},
        "outcomes": lambda i: {"warning_id": f"w{i}", "channel": "visit", "outcome": "visited", "ts": ts(i),
                               "task_id": f"v{i}"},
    }


SPECIFIC = {  # a value only this topic's rules refuse: (field, bad value)
    "signals.telecom": ("subscriber", "+٨٦١٣٨٠٠١٣٨٠٠٠"),
    "signals.payment": ("payee_account", " - "),
    "signals.domain": ("domain", "bad domain"),
    "intel.indicators": ("value", "com.cn"),
    "registry.subjects": ("name_masked", "王小明"),
    "outcomes": ("outcome", "vanished"),
}


def _bend(rng: random.Random, topic: str, doc: dict[str, Any], now: int) -> tuple[bytes | None, int | None]:
    """One bent record (its value, and the Kafka timestamp to send it with: None for the producer's clock)."""
    how = rng.choice(["tombstone", "not json", "utf8", "array", "missing", "type", "huge", "deep", "future",
                      "future kafka too", "specific"])
    if how == "tombstone":
        return None, None
    if how == "not json":
        return b"{not json", None
    if how == "utf8":
        return json.dumps(doc).encode()[:-1] + b'\xff"}', None
    if how == "array":
        return json.dumps([doc]).encode(), None
    if how == "missing":
        return json.dumps({k: v for k, v in doc.items() if k != "ts"}).encode(), None
    if how == "type":
        return json.dumps({**doc, "ts": str(doc["ts"])}).encode(), None
    if how == "huge":
        return json.dumps({**doc, "pad": "x" * 70_000}).encode(), None
    if how == "deep":
        return json.dumps(doc).encode()[:-1] + b', "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", None
    if how == "future":  # two days ahead, sent with Kafka timestamp 0: past the wall clock's bound
        return json.dumps({**doc, "ts": now + 48 * HOUR}).encode(), 0
    if how == "future kafka too":  # the producer's timestamp ahead as well (as far as Kafka 4 takes: an hour), so
        # the day-ahead-of-Kafka rule alone would let it in
        return json.dumps({**doc, "ts": now + 2 * HOUR}).encode(), now + 55 * 60_000
    field, value = SPECIFIC[topic]
    return json.dumps({**doc, field: value}).encode(), None


def test_ten_thousand_hostile_records_per_topic_end_in_deadletter_and_move_no_clock(
        isolated: Settings, worker: WorkerProcess) -> None:
    rng = random.Random(16)
    now = int(time.time() * 1000)
    producer = KafkaProducer(**client_options(isolated), acks="all", linger_ms=20, max_request_size=2_000_000)
    sent: dict[tuple[str, int, int], bool] = {}  # (topic, partition, offset) → bent
    pending = []
    for topic, base in _bases(now).items():
        for i in range(PER_TOPIC):
            doc = base(i)
            bent = rng.random() < 0.65
            value, kafka_ts = _bend(rng, topic, doc, now) if bent else (json.dumps(doc).encode(), None)
            # a registry tombstone keyed by a subject id erases that person (test_erasure.py): keyed by nothing,
            # it is bent
            key = b"" if topic == "registry.subjects" and value is None else f"k{i}".encode()
            pending.append((topic, bent, producer.send(isolated.topic(topic), key=key, value=value,
                                                       timestamp_ms=kafka_ts)))
    producer.flush(120)
    for topic, bent, future in pending:
        meta = future.get(30)
        sent[(topic, meta.partition, meta.offset)] = bent
    producer.close()
    bent_count = sum(sent.values())

    dead = [msgspec.json.decode(m.value, type=DeadLetter)
            for m in consume(isolated, "deadletter", expect=bent_count, timeout=240, linger=5)]
    where = {(d.topic, d.partition, d.offset): d for d in dead}
    good_dead = [d for k, d in where.items() if not sent.get(k, False)]
    assert not good_dead, [(d.topic, d.reason) for d in good_dead[:5]]
    missing = [k for k, bent in sent.items() if bent and k not in where]
    assert not missing, missing[:5]
    assert len(dead) == len(where) == bent_count  # one dead letter each, none twice
    assert all(d.reason and not d.reason.startswith("internal error") for d in dead)
    by_topic = {t: sum(1 for (topic, _, _), bent in sent.items() if bent and topic == t) for t in _bases(now)}
    assert min(by_topic.values()) > PER_TOPIC // 2, by_topic

    assert worker.running and worker.proc is not None
    log = worker.log_path.read_text(errors="replace")
    assert " failed on partition " not in log and "Traceback" not in log
    client = connect_sync(isolated.redis_url, **isolated.redis_options())
    try:
        clock = int(client.get(clock_key(isolated.redis_prefix)) or 0)
    finally:
        client.close()
    assert 0 < clock <= now - HOUR, clock  # the escalation clock: moved by the good outcomes only
    print(f"hostile run: {len(sent)} records, {bent_count} bent, all dead-lettered with a reason "
          f"({', '.join(f'{t} {n}' for t, n in by_topic.items())}); escalation clock {now - clock} ms behind")
