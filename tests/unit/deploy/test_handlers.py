"""The handlers of the worker's stages that need no other stage: a provider's progress record."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from deploy.app.handlers import Handlers
from deploy.city_stream import progress_record
from ops.metrics import PipelineMetrics
from schemas.decode import InvalidRecord
from schemas.internal import Output, PersonEvent
from schemas.records import Subject
from streams.envelope import EventBatch
from streams.person_state import StatePolicy
from streams.processor import Processor
from streams.value_index import IndexPolicy
from streams.watermarks import Mark, SourceProgress

TS = 1_764_547_200_000


def _handlers() -> Handlers:
    progress = SourceProgress(producers={"signals.payment": ["bank-hub"]}, clock=lambda: 0.0)
    return Handlers(None, None, progress, PipelineMetrics(CollectorRegistry()))  # type: ignore[arg-type]


def _record(key: bytes, value: bytes, partition: int = 3, kafka_s: float | None = TS / 1000) -> SimpleNamespace:
    event = SimpleNamespace(key=key, value=value, partition=partition, offset=0, timestamp=kafka_s)
    event.message = event
    return event


def test_a_progress_record_moves_its_partition_and_sends_nothing() -> None:
    handlers = _handlers()
    handle = handlers.provider_progress("signals.payment")
    assert handle(_record(*progress_record("bank-hub", TS))) == []
    assert handlers.progress.mark("signals.payment/3", highwater=None) == Mark("signals.payment/3", TS)
    assert handle(_record(*progress_record("someone-else", TS + 5))) == []  # not listed: ignored (and counted so)
    assert handlers.progress.mark("signals.payment/3", highwater=None).ts == TS
    counts = handlers.metrics.registry.get_sample_value
    assert counts("yujing_progress_records_total", {"topic": "signals.payment", "counted": "yes"}) == 1
    assert counts("yujing_progress_records_total", {"topic": "signals.payment", "counted": "no"}) == 1


@pytest.mark.parametrize("key, value, field", [
    (b"progress:bank-hub", b'{"producer": "bank-hub", "progress_ts": "soon"}', "progress_ts"),
    (b"progress:bank-hub", b'{"producer": "bank-hub"}', "progress_ts"),
    (b"progress:bank-hub", b'{"producer": "bank-hub", "progress_ts": 4102444800000}', "progress_ts"),  # year 2100
    (b"progress:gw-1", b'{"producer": "bank-hub", "progress_ts": 1764547200000}', "producer"),
    (b"progress:bank-hub", b'{"producer": "bank-hub", "progress_ts": 1764720000000}', "progress_ts"),  # 2 days ahead
])
def test_a_bad_progress_record_is_refused_naming_the_field(key: bytes, value: bytes, field: str) -> None:
    handlers = _handlers()
    with pytest.raises(InvalidRecord) as refused:
        handlers.provider_progress("signals.payment")(_record(key, value))
    assert refused.value.field == field
    assert handlers.progress.mark("signals.payment/3", highwater=None).ts == 0


def test_no_event_time_from_outside_passes_the_wall_clock_bound_whatever_kafka_says() -> None:
    """An outcome dated 2096 once moved the escalation clock for good; Kafka's timestamp (0 here, or also in the
    future) is no bound, so the worker's wall clock plus the allowed skew is."""
    seen: list[object] = []

    async def handle_outcome(outcome: object) -> list:
        seen.append(outcome)
        return []

    handlers = _handlers()
    handlers.latest_ms = lambda: TS + 3_600_000
    handlers.dispatcher = SimpleNamespace(handle_outcome=handle_outcome)  # type: ignore[assignment]
    handlers.processor = SimpleNamespace(indicator=lambda i: [i], subject=lambda s: [s],  # type: ignore[assignment]
                                         lookup=lambda key: None)
    future = TS + 2 * 3_600_000
    outcome = {"warning_id": "w1", "channel": "visit", "outcome": "visited", "ts": future}
    indicator = {"type": "domain", "value": "refund-1.top", "action": "add", "fraud_type": "romance",
                 "confidence": 0.9, "source": "case-1", "ts": future}
    subject = {"subject_id": "s1", "phones": [], "accounts": [], "birth_year": 1950, "grid_id": "G1",
               "station_id": "S1", "name_masked": "王*", "ts": future}
    call = {"event_id": "e1", "ts": future, "kind": "call", "direction": "in", "subscriber": "+8613800138000",
            "counterpart": "+8613800139000", "duration_s": 60}
    for kafka_s in (0, future / 1000 + 60, None):
        with pytest.raises(InvalidRecord, match="past the latest this worker accepts"):
            asyncio.run(handlers.outcome(_record(b"w1", json.dumps(outcome).encode(), kafka_s=kafka_s)))
        with pytest.raises(InvalidRecord, match="past the latest"):
            handlers.indicator(_record(b"d", json.dumps(indicator).encode(), kafka_s=kafka_s))
        with pytest.raises(InvalidRecord, match="past the latest"):
            asyncio.run(handlers.registry(_record(b"s1", json.dumps(subject).encode(), kafka_s=kafka_s)))
        with pytest.raises(InvalidRecord, match="past the latest"):
            handlers.provider_progress("signals.payment")(_record(*progress_record("bank-hub", future),
                                                                  kafka_s=kafka_s))
        (dead,) = handlers.ingest("signals.telecom")(_record(b"+8613800138000", json.dumps(call).encode(),
                                                             kafka_s=kafka_s))
        assert dead.topic == "deadletter" and "past the latest" in dead.value.reason
    assert seen == []
    in_time = {**outcome, "ts": TS + 3_600_000}
    asyncio.run(handlers.outcome(_record(b"w1", json.dumps(in_time).encode(), kafka_s=0)))
    assert len(seen) == 1


def test_a_registry_tombstone_erases_redis_first_then_the_identity_and_tells_the_persons_partition() -> None:
    processor = Processor(identity={}, persons={}, values={}, index_policy=IndexPolicy(), state_policy=StatePolicy())
    processor.subject(Subject(subject_id="S1", phones=["+8613800000001"], accounts=["6222000000000001"],
                              birth_year=1950, grid_id="G1", station_id="ST1", name_masked="王*", ts=TS))
    erased: list[str] = []

    class Dispatch:
        async def erase(self, subject_id: str) -> None:
            assert processor.lookup("subject:S1") is not None  # Redis first: a failure there runs it all again
            erased.append(subject_id)

    handlers = Handlers(processor, None, SourceProgress(), PipelineMetrics(CollectorRegistry()),  # type: ignore[arg-type]
                        dispatcher=Dispatch())  # type: ignore[arg-type]
    out = asyncio.run(handlers.registry(_record(b"S1", None)))  # type: ignore[arg-type]
    assert erased == ["S1"]
    assert [processor.lookup(k) for k in ("subject:S1", "phone:+8613800000001", "account:6222000000000001")] == \
        [None] * 3
    assert out == [Output("yujing.events", b"S1",
                          EventBatch([PersonEvent(person="S1", subject_id="S1", source="erasure")], [None]))]
    with pytest.raises(InvalidRecord):
        asyncio.run(handlers.registry(_record(b"", None)))  # type: ignore[arg-type]
