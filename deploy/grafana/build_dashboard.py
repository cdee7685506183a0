"""Writes deploy/grafana/dashboards/yujing.json, the operations center's dashboard (dashboard as code).

    .venv/bin/python -m deploy.grafana.build_dashboard      # after editing PANELS; a test checks it is current
"""
from __future__ import annotations

import json
from pathlib import Path

from schemas.catalogue import N_, tr

OUT = Path(__file__).parent / "dashboards" / "yujing.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
DAY = "[24h]"
CLOSED = 'outcome=~"dissuaded|already_lost|false_alarm|visited|call_answered"'

# (title, kind, unit, [(expr, legend)], width)
PANELS: list[tuple[str, str, str, list[tuple[str, str]], int]] = [
    (N_("Signals in per second"), "timeseries", "ops",
     [('sum by (topic) (rate(yujing_events_in_total{topic=~"signals\\\\..*"}[5m]))', "{{topic}}")], 8),
    (N_("Consumer lag"), "timeseries", "short", [("yujing:consumer_lag_messages:sum", "{{topic}}")], 8),
    (N_("Latency p50 / p99"), "timeseries", "s", [
        ("histogram_quantile(0.5, sum by (le) (rate(yujing_signal_to_warning_seconds_bucket[5m])))",
         N_("signal→warning p50")),
        ("yujing:signal_to_warning_seconds:p99_5m", N_("signal→warning p99")),
        ("yujing:transfer_to_stop_payment_seconds:p99_5m", N_("transfer→stop-payment p99"))], 8),
    (N_("Worker event-loop stalls over 0.1 s (per minute)"), "timeseries", "short",
     [("yujing:event_loop_stalls_per_minute:rate10m", "{{instance}}")], 8),
    (N_("Listed providers silent (least over workers)"), "timeseries", "short",
     [('min by (topic) (yujing_progress_producers{live="no"})', "{{topic}}")], 8),
    (N_("Warnings by tier (per hour)"), "timeseries", "short",
     [("sum by (tier) (increase(yujing_warnings_total[1h]))", "{{tier}}")], 8),
    (N_("Warnings by fraud type (24 h)"), "bargauge", "short",
     [(f"sum by (fraud_type) (increase(yujing_warnings_total{DAY}))", "{{fraud_type}}")], 8),
    (N_("Dispatches by channel"), "timeseries", "ops",
     [("sum by (channel) (rate(yujing_dispatches_total[5m]))", "{{channel}}")], 8),
    (N_("Calls and visits by station (24 h)"), "bargauge", "short",
     [(f"sum by (station, channel) (increase(yujing_tasks_total{DAY}))", "{{station}} {{channel}}")], 8),
    (N_("Task queue depth (top 20 grids and stations)"), "bargauge", "short",
     [("topk(20, yujing_task_queue_depth)", "{{channel}} {{unit}}")], 8),
    (N_("Oldest open task (top 10)"), "bargauge", "s",
     [("topk(10, yujing_task_queue_oldest_seconds)", "{{channel}} {{unit}}")], 8),
    (N_("SLA breaches (24 h)"), "stat", "short",
     [(f"sum(increase(yujing_sla_breaches_total{DAY}))", N_("breaches"))], 4),
    (N_("Success rate (dissuaded of closed, 24 h)"), "stat", "percentunit", [(
        f'sum(increase(yujing_outcomes_total{{outcome="dissuaded"}}{DAY})) / sum(increase(yujing_outcomes_total{{{CLOSED}}}{DAY}))',
        N_("success"))], 4),
    (N_("Precision (not a false alarm, 24 h)"), "stat", "percentunit", [(
        f'1 - sum(increase(yujing_outcomes_total{{outcome="false_alarm"}}{DAY})) / sum(increase(yujing_outcomes_total{{{CLOSED}}}{DAY}))',
        N_("precision"))], 4),
    (N_("Avoided loss estimate (yuan, 24 h)"), "stat", "currencyCNY", [
        (f"sum(increase(yujing_outcome_saved_fen_total{DAY})) / 100", N_("reported saved")),
        (f"sum(increase(yujing_stop_payment_requested_fen_total{DAY})) / 100", N_("stop-payments requested"))], 4),
    (N_("Banks' answers to stop-payments (24 h)"), "bargauge", "short",
     [(f"sum by (reply) (increase(yujing_stop_payment_replies_total{DAY}))", "{{reply}}")], 8),
    (N_("Interceptions by kind (per hour)"), "timeseries", "short",
     [("sum by (kind) (increase(yujing_interceptions_total[1h]))", "{{kind}}")], 8),
    (N_("Indicator hits: forward and reverse (per hour)"), "timeseries", "short",
     [("sum by (mode) (increase(yujing_indicator_hits_total[1h]))", "{{mode}}")], 8),
    (N_("Cooldown suppressions and dead letters"), "timeseries", "ops", [
        ("sum(rate(yujing_cooldown_suppressed_total[5m]))", N_("suppressed")),
        ("sum by (topic, reason) (rate(yujing_deadletters_total[5m]))", "dead {{topic}} {{reason}}")], 8),
    (N_("SMS receipts"), "timeseries", "ops",
     [("sum by (kind, outcome) (rate(yujing_sms_deliveries_total[5m]))", "{{kind}} {{outcome}}")], 12),
    (N_("SMS waiting (quiet hours, campaigns)"), "timeseries", "short",
     [("sum by (kind) (yujing_sms_waiting)", "{{kind}}")], 12),
    (N_("Quick assessment: waiting and the longest wait"), "timeseries", "short", [
        ("max(yujing_review_waiting)", N_("waiting")),
        ("max(yujing_review_oldest_waiting_seconds) / 60", N_("longest wait (minutes)"))], 12),
    (N_("Quick assessment by outcome (24 h)"), "bargauge", "short",
     [(f"sum by (event, tier) (increase(yujing_review_decisions_total{DAY}))", "{{event}} {{tier}}")], 12),
]


def build() -> dict:
    """The dashboard model (Grafana schema 39), its titles in the operators' language."""
    panels, x, y, row_h = [], 0, 0, 8
    for i, (title, kind, unit, targets, width) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + row_h
        panels.append({
            "id": i, "type": kind, "title": tr(title), "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": width, "h": row_h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": [{"refId": chr(ord("A") + j), "datasource": DS, "expr": expr,
                         "legendFormat": legend if "{{" in legend else tr(legend)}  # Grafana's own templates stay
                        for j, (expr, legend) in enumerate(targets)],
        })
        x += width
    return {
        "uid": "yujing-ops", "title": tr("yujing: operations center"), "tags": ["yujing", "fraud"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus", "current": {}}]},
        "annotations": {"list": []}, "panels": panels,
    }


def render() -> str:
    """The dashboard JSON as written to disk."""
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
