"""The handlers of the worker's stages that need no other stage: a provider's progress record."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from deploy.app.handlers import Handlers
from deploy.city_stream import progress_record
from ops.metrics import PipelineMetrics
from schemas.decode import InvalidRecord
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
