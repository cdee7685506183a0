"""The effect of learning from outcomes: retrain with what the field reported back, compare on a held-out city.

    .venv/bin/python -m bench.outcomes_effect --model var/data/model

The world shifts after training: in the field and held-out cities many more people install meeting apps for
work (15 % instead of 3 %). The current model runs on a field city; every warning gets the outcome the field
would report (dissuaded or already lost for real victims, false alarm for people in no episode); retraining
adds those labelled rows (`yujing train --with-outcomes` does the same from the `outcomes` topic). Both
models are then evaluated under the same tier policy on a held-out city with the same shift.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from schemas.records import Outcome
from schemas.units import DAY_MS
from scorers.lab.city import CityConfig
from scorers.lab.evaluate import figures, replay
from scorers.lab.outcome_labels import outcome_rows
from scorers.lab.training import TRAIN_CITY, train_model
from scorers.model import load
from scorers.tiers import TierPolicy


def field_outcomes(r) -> list[Outcome]:  # type: ignore[no-untyped-def]
    """What the field would report for each warning of a replay, from its ground truth."""
    episodes = {}
    for ep in r.city.truth:
        for key in r.keys_of.get(ep.episode_id, []):
            episodes.setdefault(key, []).append(ep)
    out = []
    for d in r.decisions:
        if not d.rose:
            continue
        eps = [ep for ep in episodes.get(d.person, []) if ep.start_ts - DAY_MS <= d.ts <= ep.start_ts + 7 * DAY_MS]
        engaged = [ep for ep in eps if ep.engaged]
        if engaged:
            lost = engaged[0].first_loss_ts is not None and engaged[0].first_loss_ts <= d.ts
            outcome = "already_lost" if lost else "dissuaded"
        elif eps:
            continue  # contacted but never engaged: the call is answered, nothing to label
        else:
            outcome = "false_alarm"
        out.append(Outcome(warning_id=d.decision_id, channel="phone", outcome=outcome, ts=d.ts + 3_600_000))  # type: ignore[arg-type]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default="/tmp/yujing-model-with-outcomes")
    args = parser.parse_args()
    policy = TierPolicy.load()
    before = load(Path(args.model))
    field = CityConfig(residents=3000, days=6, seed=31, attempts_per_10k_per_day=80, work_meeting_share=0.15)
    held_out = dataclasses.replace(field, seed=32)
    r = replay(before, policy, field)
    outcomes = field_outcomes(r)
    rows = outcome_rows(r.decisions, outcomes)
    after = train_model(Path(args.out), TRAIN_CITY, outcome_rows=rows, note="with field outcomes")
    result = {"field_outcomes": {o: sum(1 for x in outcomes if x.outcome == o)
                                 for o in ("dissuaded", "already_lost", "false_alarm")},
              "labelled_rows": len(rows)}
    for name, model in (("before", before), ("after", after)):
        figs = figures(replay(model, policy, held_out))["model"]
        result[name] = {k: figs[k] for k in ("recall_before_loss", "recall_before_loss_t1_t2",
                                             "benign_warned_per_10k_per_day", "t1_t2_precision",
                                             "median_lead_minutes")}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
