"""The effect of learning from outcomes: retrain with what the field reported back, compare on a held-out city.

    .venv/bin/python -m bench.outcomes_effect --model var/data/model

The world shifts after training: the field and held-out cities are of the `office` family (meeting and
remote-support apps at work, links, new payees), which the model was not fitted to. The current model runs on a
field city; every warning gets the outcome the field would report (dissuaded or already lost for real victims,
false alarm for people in no episode); retraining adds those labelled rows (`yujing train --with-outcomes` does
the same from the `outcomes` topic). Both models are then evaluated on a held-out city of the same family, each
with the thresholds tuned with it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from schemas.internal import Decision
from schemas.records import Outcome
from schemas.units import DAY_MS
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.lab.city import City, CityConfig
from scorers.lab.city.family import family
from scorers.lab.evaluate import evaluate
from scorers.lab.outcome_labels import outcome_rows
from scorers.lab.recording import feed_city, record
from scorers.lab.training import train_model
from scorers.model import Model, load
from streams.local import LocalPipeline

FIELD = CityConfig(residents=3000, days=4, seed=31, family=family("office"))
HELD_OUT = CityConfig(residents=3000, days=4, seed=32, family=family("office"))


def field_decisions(model: Model, cfg: CityConfig) -> tuple[list[Decision], City, LocalPipeline]:
    """What the model decides on a field city, through the pipeline's own logic."""
    city, pipeline = City(cfg), LocalPipeline()
    pipeline.processor.on_person = Decider(model, model.tier_policy(), Ages(pipeline.processor.lookup))
    feed_city(city, pipeline)
    return [o.value for o in pipeline.sent["yujing.decisions"]], city, pipeline  # type: ignore[misc]


def field_outcomes(decisions: list[Decision], city: City) -> list[Outcome]:
    """What the field would report for each warning, from the city's ground truth."""
    episodes: dict[str, list] = {}
    for ep in city.truth:
        for key in city.person_keys(ep):
            episodes.setdefault(key, []).append(ep)
    out = []
    for d in decisions:
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
    before = load(Path(args.model))
    decisions, city, _ = field_decisions(before, FIELD)
    outcomes = field_outcomes(decisions, city)
    rows = outcome_rows(decisions, outcomes)
    after = train_model(Path(args.out), outcome_rows=rows, note="with field outcomes")
    result: dict = {"field_outcomes": {o: sum(1 for x in outcomes if x.outcome == o)
                                       for o in ("dissuaded", "already_lost", "false_alarm")},
                    "labelled_rows": len(rows)}
    held = record(HELD_OUT)
    for name, model in (("before", before), ("after", after)):
        figs = evaluate(held, model, model.tier_policy())["model"]
        result[name] = {k: figs[k] for k in ("recall_before_loss", "recall_before_loss_t1_t2",
                                             "ordinary_warned_per_10k_per_day", "t1_t2_precision",
                                             "median_lead_minutes")}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
