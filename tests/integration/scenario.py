"""A small, fixed scenario for streaming-core integration tests: who talked to whom, and when it became known."""
from __future__ import annotations

import json
import time

import msgspec

from deploy.config import Settings
from deploy.workers import WorkerProcess
from schemas.internal import Decision
from streams.kafka_io import consume, produce, read_table
from streams.person_state import PersonState, decode_state
from streams.value_index import Entry, ValueHead, decode_entry, decode_head, entry_key

HOUR = 3_600_000
T = 1_764_547_200_000 + 100 * HOUR  # the moment the fraud number becomes an indicator
FRAUD = "+8617000001111"

SUBJECTS = [
    {"subject_id": "S_ALICE", "phones": ["+8613800000001", "+8613800000011"], "accounts": ["6222000000000001"]},
    {"subject_id": "S_BOB", "phones": ["+8613800000002"], "accounts": ["6222000000000002"]},
    {"subject_id": "S_CAROL", "phones": ["+8613800000003"], "accounts": ["6222000000000003"]},
    {"subject_id": "S_DAN", "phones": ["+8613800000004"], "accounts": ["6222000000000041", "6217000000000042",
                                                                       "6228000000000043"]},
]


def subject_doc(s: dict[str, object], i: int) -> bytes:
    return json.dumps({**s, "birth_year": 1950 + i, "grid_id": f"G{i:04d}", "station_id": f"ST{i % 2}",
                       "name_masked": "王*", "ts": T - 500 * HOUR}).encode()


def call(event_id: str, subscriber: str, counterpart: str, ts: int, duration_s: int = 600) -> tuple[bytes, bytes]:
    doc = {"event_id": event_id, "ts": ts, "kind": "call", "direction": "in", "subscriber": subscriber,
           "counterpart": counterpart, "duration_s": duration_s, "counterpart_tags": ["virtual_operator"]}
    return subscriber.encode(), json.dumps(doc).encode()


def dns(event_id: str, subscriber: str, domain: str, ts: int) -> tuple[bytes, bytes]:
    doc = {"event_id": event_id, "ts": ts, "subscriber": subscriber, "kind": "dns", "domain": domain}
    return subscriber.encode(), json.dumps(doc).encode()


def indicator(kind: str, value: str, action: str, ts: int, source: str = "case-2025-001") -> tuple[bytes, bytes]:
    doc = {"type": kind, "value": value, "action": action, "fraud_type": "impersonate_authority",
           "confidence": 0.95, "source": source, "ts": ts}
    return f"{kind}:{value}".encode(), json.dumps(doc).encode()


def load_registry(settings: Settings, timeout: float = 60.0) -> None:
    """Publish the registry and wait until every worker's identity table has it."""
    produce(settings, "registry.subjects", [(s["subject_id"].encode(), subject_doc(s, i))  # type: ignore[union-attr]
                                            for i, s in enumerate(SUBJECTS)])
    wanted = {f"subject:{s['subject_id']}".encode() for s in SUBJECTS}
    wait_for(lambda: wanted <= set(read_table(settings, "identity")), timeout, "the identity table")


def background(n: int, start: int = T - 90 * HOUR, end: int = T - 21 * HOUR,
               first: int = 0) -> list[tuple[bytes, bytes]]:
    """Ordinary calls between ordinary numbers, spread evenly over [start, end) in event-time order (a source
    partition is read in the order its provider wrote it: streams/watermarks.py)."""
    return [call(f"bg-{i}", f"+86139{i % 50:08d}", f"+86137{(i * 7) % 40:08d}",
                 start + (i - first) * (end - start) // n, 60)
            for i in range(first, first + n)]


def person_state(settings: Settings, person: str) -> PersonState | None:
    raw = read_table(settings, "persons").get(person.encode())
    return decode_state(raw) if raw else None


def value_state(settings: Settings, value_key: str) -> tuple[ValueHead, dict[str, Entry]] | None:
    """A value's head and entries as the worker's `values` table holds them (read from its changelog)."""
    table = read_table(settings, "values")
    raw = table.get(value_key.encode())
    if raw is None:
        return None
    head = decode_head(raw)
    entries = {p: decode_entry(table[entry_key(value_key, p).encode()]) for p in head.people}
    return head, entries


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    """Poll `check` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


MIN = 60_000
ALICE = "+8613800000001"


def scam_call(event_id: str, ts: int, duration: int) -> tuple[bytes, bytes]:
    doc = {"event_id": event_id, "ts": ts, "kind": "call", "direction": "in", "subscriber": ALICE,
           "counterpart": "+0085291234567", "duration_s": duration, "counterpart_tags": ["spoof_suspect"]}
    return ALICE.encode(), json.dumps(doc).encode()


def feed_refund_scam(settings: Settings) -> None:
    """The registry, then a refund scam unfolding on ALICE: spoofed call, SMS link, visit, meeting app, first transfer
    (TR-1, 12,500 yuan)."""
    load_registry(settings)
    sms = {"event_id": "fcs-sms", "ts": T + 15 * MIN, "kind": "sms", "direction": "in", "subscriber": ALICE,
           "counterpart": "+86 170 1234 5678", "urls": ["http://refund-7731.top/claim?o=88"],
           "counterpart_tags": ["virtual_operator"]}
    produce(settings, "signals.telecom", [scam_call("fcs-call", T, 2280), (ALICE.encode(), json.dumps(sms).encode())])
    produce(settings, "signals.domain", [
        (ALICE.encode(), json.dumps({"event_id": "fcs-visit", "ts": T + 20 * MIN, "subscriber": ALICE,
                                     "kind": "http", "domain": "refund-7731.top"}).encode()),
        (ALICE.encode(), json.dumps({"event_id": "fcs-app", "ts": T + 30 * MIN, "subscriber": ALICE,
                                     "kind": "app_install", "app": "com.tencent.wemeet.app"}).encode())])
    produce(settings, "signals.payment", [(b"6222000000000001", json.dumps({
        "event_id": "fcs-pay", "ts": T + 55 * MIN, "transfer_id": "TR-1", "status": "initiated",
        "payer_account": "6222000000000001", "payee_account": "6217999900001111", "payee_bank": "BOCOM",
        "amount_fen": 1_250_000, "channel": "mobile", "payee_first_seen": True}).encode())])



def refund_scam_tiers(settings: Settings, worker: WorkerProcess) -> list[str]:
    """Start `worker`, feed it the refund scam, and return the tiers it decided (stopping it on the way out)."""
    worker.start()
    try:
        feed_refund_scam(settings)
        return [msgspec.json.decode(m.value, type=Decision).tier
                for m in consume(settings, "yujing.decisions", expect=2, timeout=60, linger=2)]
    finally:
        worker.stop()
