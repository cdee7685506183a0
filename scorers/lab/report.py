"""The evaluation report: figures as JSON, plots as PNG, both side by side in one HTML page."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

ROWS = [
    ("recall_before_loss", "victims warned before their first loss"),
    ("recall_before_loss_t1_t2", "… at T1 or T2"),
    ("stop_payment_before_loss", "stop-payment requested before the loss completed"),
    ("recall_t1_t2_engaged", "engaged victims reaching T1/T2"),
    ("t1_t2_precision", "T1/T2 precision"),
    ("benign_warned_per_10k_per_day", "benign residents warned per 10k per day"),
    ("median_lead_minutes", "median lead time before loss (minutes)"),
]


def _plots(folder: Path, figs: dict[str, Any], curves: dict[str, list[float]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot(curves["recall"], curves["precision"])
    ax.set(xlabel="recall", ylabel="precision", title="per-moment risk score: precision-recall")
    fig.tight_layout(); fig.savefig(folder / "precision_recall.png", dpi=110); plt.close(fig)
    made.append("precision_recall.png")
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.plot(curves["calibration_predicted"], curves["calibration_observed"], marker="o")
    ax.set(xlabel="predicted", ylabel="observed", title="calibration (deciles)", xscale="symlog", yscale="symlog")
    fig.tight_layout(); fig.savefig(folder / "calibration.png", dpi=110); plt.close(fig)
    made.append("calibration.png")
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    series = [(figs[n]["lead_minutes"], label) for n, label in (("model", "model"),
                                                               ("baseline_any_indicator_contact", "baseline"))]
    top = max((max(leads) for leads, _ in series if leads), default=60) / 60
    bins = [top * k / 24 for k in range(25)]  # one set of bins for both, so the bars compare
    for leads, label in series:
        if leads:
            ax.hist([x / 60 for x in leads], bins=bins, alpha=0.6, label=label)
    ax.set(xlabel="hours of warning before the first loss", ylabel="victims", title="lead times")
    ax.legend(); fig.tight_layout(); fig.savefig(folder / "lead_times.png", dpi=110); plt.close(fig)
    made.append("lead_times.png")
    return made


def write_report(folder: Path, figs: dict[str, Any], curves: dict[str, list[float]],
                 meta: dict[str, Any]) -> Path:
    """Write figures.json, the PNG plots and index.html into `folder`; returns the HTML's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "figures.json").write_text(json.dumps({**figs, "model_meta": meta}, indent=2, ensure_ascii=False))
    pngs = _plots(folder, figs, curves)
    m, b = figs["model"], figs["baseline_any_indicator_contact"]
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{m[key]}</td><td>{b[key]}</td></tr>" for key, label in ROWS)
    types = sorted(set(m["per_fraud_type_recall_before_loss"]) | set(b["per_fraud_type_recall_before_loss"]))
    type_rows = "".join(f"<tr><td>{t}</td><td>{m['per_fraud_type_recall_before_loss'].get(t, '–')}</td>"
                        f"<td>{b['per_fraud_type_recall_before_loss'].get(t, '–')}</td></tr>" for t in types)
    city = figs["city"]
    page = f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>yujing evaluation</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
img{{margin:6px}}</style>
<h1>Evaluation on a held-out simulated city</h1>
<p>City seed {city['seed']}: {city['residents']:,} residents, {city['days']} days, {city['attempts']} fraud attempts
({city['engaged']} engaged), {city['attempts_per_10k_per_day']} attempts per 10k residents per day (far above real
incidence, so that every type is represented). Model {html.escape(str(meta.get('model_version')))},
policy {html.escape(str(figs.get('policy_version')))}.</p>
<table><tr><th></th><th>model + tiers</th><th>naive baseline: warn on any contact with a known indicator</th></tr>
{rows}<tr><td>victims with a loss</td><td>{m['victims_with_loss']}</td><td>{b['victims_with_loss']}</td></tr></table>
<h2>Recall before loss by fraud type</h2><table><tr><th>type</th><th>model</th><th>baseline</th></tr>{type_rows}</table>
<p>Warnings by tier: {figs['decisions']['by_tier']}; stop-payment requests: {figs['decisions']['stop_payments']};
fraud type right for warned victims: {figs['type_accuracy_on_victims']}.</p>
{''.join(f'<img src="{p}" alt="{p}">' for p in pngs)}
</html>"""
    out = folder / "index.html"
    out.write_text(page)
    return out
