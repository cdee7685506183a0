"""The dispatch services' Prometheus metrics (the task feed, the SMS adapter), on a registry handed in.

Names carry the `yujing_` prefix and base units; label values are bounded (channel, grid or station, outcome).
"""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class FeedMetrics:
    """The task feed's metrics: queue depths and oldest open task per queue, claims and reports."""

    depth: Gauge
    oldest: Gauge
    claims: Counter
    reports: Counter


def feed_metrics(registry: CollectorRegistry) -> FeedMetrics:
    """The task feed's metrics, on `registry`."""
    labels = ["channel", "unit"]  # unit: the grid or station of the queue
    return FeedMetrics(
        depth=Gauge("yujing_task_queue_depth", "Open and claimed tasks waiting, per queue", labels, registry=registry),
        oldest=Gauge("yujing_task_queue_oldest_seconds", "Event-time age of the oldest open task, per queue", labels,
                     registry=registry),
        claims=Counter("yujing_feed_claims_total", "Tasks claimed through the feed", ["channel"], registry=registry),
        reports=Counter("yujing_feed_reports_total", "Task outcomes reported through the feed", ["channel", "outcome"],
                        registry=registry))


@dataclass
class SmsMetrics:
    """The SMS adapter's metrics: outcomes by kind, sends the provider took, receipts, messages waiting."""

    deliveries: Counter
    accepted: Counter
    receipts: Counter
    waiting: Gauge


def sms_metrics(registry: CollectorRegistry) -> SmsMetrics:
    """The SMS adapter's metrics, on `registry`."""
    return SmsMetrics(
        deliveries=Counter("yujing_sms_deliveries_total", "SMS outcomes written (a receipt, a refusal, an expiry), by "
                           "kind (warning, reminder) and outcome", ["kind", "outcome"], registry=registry),
        accepted=Counter("yujing_sms_accepted_total", "Sends the provider took (accepted) or may have (uncertain: "
                         "no answer; never sent again)", ["kind", "verdict"], registry=registry),
        receipts=Counter("yujing_sms_receipts_total", "Provider receipts, by result (delivered, failed, unmatched)",
                         ["result"], registry=registry),
        waiting=Gauge("yujing_sms_waiting", "Messages waiting: parked warnings (quiet hours), reminders, and sent "
                      "ones waiting for their receipt", ["kind"], registry=registry))
