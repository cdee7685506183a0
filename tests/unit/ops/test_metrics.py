"""Metric bookkeeping on a fresh registry: bounded dead-letter reasons, what each output counts as."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from ops.metrics import PipelineMetrics, reason_category
from schemas.internal import Output
from schemas.records import (
    DeadLetter,
    FraudWarning,
    PaymentInterception,
    Reason,
    SmsTask,
    VisitTask,
)


def dead(reason: str, field: str | None = None) -> DeadLetter:
    return DeadLetter(topic="signals.telecom", partition=0, offset=1, reason=reason, value="", value_encoding="utf-8",
                      field=field)


@pytest.mark.parametrize(("reason", "field", "label"), [
    ("internal error: KeyError: 'x'", None, "internal_error"),
    ("not JSON: unexpected character", None, "not_json"),
    ("JSON nested too deeply", None, "not_json"),
    ("not UTF-8 (byte 3)", None, "not_utf8"),
    ("empty message (null value)", None, "empty"),
    ("record of 70000 bytes exceeds the 65536-byte limit", None, "too_large"),
    ("not a phone number in E.164", "subscriber", "invalid_field"),
    ("Expected `object`, got `array`", None, "invalid_record"),
])
def test_reason_category(reason: str, field: str | None, label: str) -> None:
    assert reason_category(dead(reason, field)) == label


def test_outputs_are_counted_by_kind_with_latencies() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics(registry)
    base = {"warning_id": "w", "tier": "T1", "fraud_type": "romance", "ts": 1_000_000}
    outputs = [
        Output("warnings", b"k", FraudWarning(**base, subject_id="S", score=0.9, reasons=[Reason(code="c", detail="d")],
                                         evidence=[], channels=["phone"], respond_by_ts=0, model_version="m",
                                         policy_version="p")),
        Output("dispatch.sms", b"k", SmsTask(**base, message_id="m", to="+86", text="t", not_before_ts=0, expires_ts=0)),
        Output("dispatch.visit", b"k", VisitTask(**base, task_id="t", subject_id="S", grid_id="G", station_id="ST1",
                                                 name_masked="王*", respond_by_ts=0)),
        Output("interception.payment", b"k", PaymentInterception(transfer_id="t", payer_account="a", payee_account="b",
                                                                 amount_fen=500, reason="r", ts=0)),
        Output("deadletter", b"k", dead("not JSON: x")),
    ]
    m.observe_outputs(outputs, origin_s=1_000.0, now_s=1_000.25)
    get = registry.get_sample_value
    assert get("yujing_warnings_total", {"tier": "T1", "fraud_type": "romance"}) == 1
    assert get("yujing_dispatches_total", {"channel": "sms", "tier": "T1"}) == 1
    assert get("yujing_tasks_total", {"channel": "visit", "station": "ST1"}) == 1
    assert get("yujing_tasks_total", {"channel": "sms", "station": "ST1"}) is None
    assert get("yujing_stop_payment_requested_fen_total") == 500
    assert get("yujing_deadletters_total", {"topic": "signals.telecom", "reason": "not_json"}) == 1
    assert get("yujing_signal_to_warning_seconds_sum") == pytest.approx(0.25)
    assert get("yujing_transfer_to_stop_payment_seconds_bucket", {"le": "0.25"}) == 1
    assert get("yujing_event_time_to_warning_seconds_count") == 1


def test_sample_quantile_sums_buckets_over_workers_as_prometheus_interpolates() -> None:
    from ops.metrics import sample_quantile

    name = "yujing_transfer_to_stop_payment_seconds"
    samples = {}
    for worker, counts in (("0", (50, 50, 50, 50)), ("1", (40, 45, 50, 50))):  # le 0.05, 0.1, 0.25, +Inf
        for le, c in zip(("0.05", "0.1", "0.25", "+Inf"), counts):
            samples[(f"{name}_bucket", (("le", le), ("worker", worker)))] = float(c)
    # 90 of 100 under 0.05 s, 95 under 0.1 s, all under 0.25 s: the same answer promtool's rule test expects
    assert sample_quantile(samples, name, 0.99) == pytest.approx(0.22)
    assert sample_quantile(samples, name, 0.5) == pytest.approx(0.05 * 50 / 90)
    assert sample_quantile({}, name, 0.99) is None
