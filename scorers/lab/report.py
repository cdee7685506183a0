"""The evaluation report: per held-out family, model + tiers beside the naive baseline, worst family first.

Writes `figures.json` (every figure of every family, the worst case of each, the model's provenance), PNG plots
(recall before loss, ordinary residents warned and lead times per family) and `index.html` with the tables.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from scorers.lab.city.family import family

ROWS = [
    ("victims_with_loss", "victims with a loss", None),
    ("recall_before_loss", "victims warned before their first loss", ">= 0.95"),
    ("recall_10min_before_loss", "... at least 10 min before", ">= 0.7"),
    ("recall_before_loss_t1_t2", "... at T1 or T2", None),
    ("t1_t2_precision", "T1/T2 precision (people at T1/T2 who were being defrauded)", ">= 0.5"),
    ("ordinary_warned_per_10k_per_day", "ordinary residents warned per 10k per day", "<= 5"),
    ("stop_payment_requests", "stop-payment requests", None),
    ("stop_payments_on_ordinary_share", "... share on ordinary transfers", "<= 0.05"),
    ("stop_payments_on_large_legit", "... on large legitimate transfers", "0"),
    ("stop_payment_before_loss", "victims whose transfer was stopped before the loss", None),
    ("median_lead_minutes", "median lead before the loss (min)", ">= 30"),
    ("p10_lead_minutes", "10th percentile lead (min)", None),
    ("fraud_type_right", "fraud type right for warned victims", None),
    ("warned_through_retracted", "ordinary people warned through a retracted indicator", "0"),
]
SYSTEMS = (("model", "model + tiers"), ("baseline_any_indicator_contact", "naive: any contact with an indicator"))


def _cell(value: Any) -> str:
    return "–" if value is None else html.escape(str(value))


def _plots(folder: Path, per_family: dict[str, dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_family)
    made = []
    for key, label, name in (("recall_before_loss", "victims warned before their first loss", "recall.png"),
                             ("ordinary_warned_per_10k_per_day", "ordinary residents warned per 10k per day",
                              "ordinary.png")):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for k, (system, legend) in enumerate(SYSTEMS):
            values = [per_family[n][system][key] or 0 for n in names]
            ax.bar([i + 0.4 * k for i in range(len(names))], values, width=0.4, label=legend)
        ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30, ha="right", fontsize=8)
        ax.set(title=label, yscale="symlog" if key.startswith("ordinary") else "linear")
        ax.legend(fontsize=7)
        fig.tight_layout(); fig.savefig(folder / name, dpi=110); plt.close(fig)
        made.append(name)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    leads = [[x / 60 for x in per_family[n]["model"]["lead_minutes"]] or [0.0] for n in names]
    ax.boxplot(leads)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="hours before the first loss", title="lead times of the model's first warning, per family",
           yscale="symlog")
    fig.tight_layout(); fig.savefig(folder / "lead_times.png", dpi=110); plt.close(fig)
    made.append("lead_times.png")
    return made


def _family_table(name: str, figs: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{_cell(figs['model'].get(key))}</td>"
                   f"<td>{_cell(figs['baseline_any_indicator_contact'].get(key))}</td><td>{goal or ''}</td></tr>"
                   for key, label, goal in ROWS)
    city = figs["city"]
    about = html.escape(family(name).about) if not name.startswith("draw-") else "drawn at random from the space"
    return (f"<h3>{html.escape(name)}</h3><p>{about}. {city['residents']:,} residents, {city['days']} days, seed "
            f"{city['seed']}, {city['attempts']} fraud attempts ({city['engaged']} engaged).</p>"
            f"<table><tr><th></th><th>model + tiers</th><th>naive baseline</th><th>goal</th></tr>{rows}</table>")


def write_report(folder: Path, per_family: dict[str, dict[str, Any]], worst: dict[str, Any],
                 meta: dict[str, Any], policy_version: str) -> Path:
    """Write figures.json, the plots and index.html into `folder`; returns the HTML's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "figures.json").write_text(json.dumps(
        {"per_family": per_family, "worst_case": worst, "policy_version": policy_version, "model_meta": meta},
        indent=2, ensure_ascii=False, default=str))
    pngs = _plots(folder, per_family)
    worst_rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{_cell(worst.get('model', {}).get(key, {}).get('value'))} "
        f"({_cell(worst.get('model', {}).get(key, {}).get('family'))})</td>"
        f"<td>{_cell(worst.get('baseline_any_indicator_contact', {}).get(key, {}).get('value'))} "
        f"({_cell(worst.get('baseline_any_indicator_contact', {}).get(key, {}).get('family'))})</td></tr>"
        for key in worst.get("model", {}))
    training = meta.get("training_data", {}).get("families", [])
    tuning = meta.get("tuning", {}).get("families", [])
    page = f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>yujing evaluation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:3px 9px;border-bottom:1px solid #ddd}}
img{{margin:6px}}</style>
<h1>Evaluation on held-out city families</h1>
<p>Model {html.escape(str(meta.get('model_version')))} (fitted on {html.escape(', '.join(training))}), policy
{html.escape(policy_version)} (thresholds chosen on {html.escape(', '.join(tuning))}). Every family below is one
neither was fitted to. Families are sorted worst first.</p>
<h2>Worst held-out case of each figure</h2>
<table><tr><th>figure</th><th>model + tiers (family)</th><th>naive baseline (family)</th></tr>{worst_rows}</table>
{''.join(f'<img src="{p}" alt="{p}">' for p in pngs)}
<h2>Per family</h2>
{''.join(_family_table(name, figs) for name, figs in per_family.items())}
</html>"""
    out = folder / "index.html"
    out.write_text(page)
    return out
