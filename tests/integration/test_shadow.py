"""Shadow mode on the real broker: a city streams through a live worker; the same model and policy in shadow decide
exactly what the live pipeline decided; a second model's report (with another policy) counts what an independent
count of the two decision topics finds (persons added, removed, at another tier; stop-payments; precision on the
outcomes' labels); promotion swaps the model folder and records who promoted which."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import msgspec

from deploy.config import Settings
from deploy.replay import replay_city
from deploy.shadow import promote, shadow_report, shadow_run
from schemas.records import is_progress
from scorers.model import load, save
from scorers.tiers import TierPolicy
from streams.kafka_io import produce, read_to_end
from tests.integration.conftest import CITY
from tests.integration.harness import isolated_settings

RANK = {"T3": 1, "T2": 2, "T1": 3}


def warned(docs: list[dict]) -> dict[str, str]:
    """Each person's highest tier among decisions that raised it: counted here without ops/shadow.py."""
    out: dict[str, str] = {}
    for doc in docs:
        if doc["rose"] and RANK[doc["tier"]] > RANK.get(out.get(doc["person"], ""), 0):
            out[doc["person"]] = doc["tier"]
    return out


def second_model(model: Path, folder: Path) -> Path:
    """The model with its risk weights doubled, saved as another artifact (`candidate-b`)."""
    m = load(model)
    risk = copy.deepcopy(m.risk)
    risk.named_steps["lr"].coef_ = risk.named_steps["lr"].coef_ * 2
    return save(folder, risk, m.types, {**m.meta, "model_version": "candidate-b"})


def test_a_shadow_report_counts_what_the_two_decision_topics_hold(stack: Settings, tmp_path: Path,
                                                                   small_model: Path) -> None:
    settings = isolated_settings(stack, tmp_path / "data", small_model)
    replay_city(settings, CITY, 1, tmp_path / "logs")
    live_docs = [json.loads(m.value) for m in read_to_end(settings, settings.topic("yujing.decisions"))
                 if not is_progress(m.key)]
    live = warned(live_docs)
    assert len(live) >= 5, live_docs  # a real comparison

    counts = shadow_run(settings, small_model)  # the live model and policy: the same decisions
    same = shadow_report(settings, None, None)
    assert counts["decisions"] == len(live_docs)
    assert (same.added, same.removed, same.changed_tier, same.stops_added, same.stops_removed) == ([],) * 5
    assert same.live.warned == same.candidate.warned == len(live)

    # a second model (its risk weights doubled: more suspicious of everyone), under a policy where the score alone
    # lifts more people to T3 and a case element touched no longer does by itself
    second = second_model(small_model, tmp_path / "model-b")
    base = load(small_model).tier_policy().to_dict()
    looser = {**base, "version": "candidate-looser", "t3": {"score": base["t3"]["score"] / 10, "hit_confidence": 1.1}}
    TierPolicy.from_dict(looser)  # valid
    policy_file = tmp_path / "tiers.json"
    policy_file.write_text(json.dumps(looser))
    shadow_run(settings, second, policy_file)
    some = sorted(live)[:3]
    by_person = {doc["person"]: doc["decision_id"] for doc in live_docs if doc["rose"]}
    ts = max(doc["ts"] for doc in live_docs)
    outcomes = [{"warning_id": by_person[some[0]], "channel": "visit", "outcome": "dissuaded", "ts": ts},
                {"warning_id": by_person[some[1]], "channel": "phone", "outcome": "false_alarm", "ts": ts},
                {"warning_id": by_person[some[2]], "channel": "sms", "outcome": "sms_delivered", "ts": ts},
                {"warning_id": by_person[some[0]], "channel": "sms", "outcome": "false_alarm", "ts": 1}]  # invalid
    produce(settings, "outcomes", [(o["warning_id"].encode(), msgspec.json.encode(o)) for o in outcomes])
    report = shadow_report(settings, None, None)  # the latest run's candidate

    shadow_docs = [doc for m in read_to_end(settings, settings.topic("yujing.shadow-decisions"))
                   if (doc := json.loads(m.value))["policy_version"] == "candidate-looser"]
    cand = warned(shadow_docs)
    assert report.candidate.version == "candidate-b/candidate-looser"
    assert report.added == sorted(cand.keys() - live.keys()) and report.added, "a looser policy warns more"
    assert report.removed == sorted(live.keys() - cand.keys())
    assert report.changed_tier == sorted((p, live[p], cand[p]) for p in live.keys() & cand.keys()
                                         if live[p] != cand[p])
    stops = {d["transfer"]["transfer_id"] for d in live_docs if d["tier"] == "T1" and d.get("transfer")}
    cand_stops = {d["transfer"]["transfer_id"] for d in shadow_docs if d["tier"] == "T1" and d.get("transfer")}
    assert (report.live.stops, report.candidate.stops) == (len(stops), len(cand_stops))
    assert (report.live.warned, report.candidate.warned) == (len(live), len(cand))
    assert (report.live.labelled, report.live.right) == (2, 1)  # delivered is not a label
    assert report.candidate.labelled == len({some[0], some[1]} & cand.keys())
    print(f"\nshadow report: live {report.live.warned} warned, candidate {report.candidate.warned}; added "
          f"{len(report.added)}, removed {len(report.removed)}, changed tier {len(report.changed_tier)}")

    said = promote(settings, second, policy_file, "chief-analyst", "looser thresholds, report of today")
    promoted = load(settings.model_path)
    assert "chief-analyst" in said and (promoted.version, promoted.tier_policy().version) == (
        "candidate-b", "candidate-looser")
    [entry] = [json.loads(line) for line in (settings.model_path.parent / "promotions.jsonl").read_text().splitlines()]
    assert (entry["by"], entry["policy_version"], entry["model_version"]) == (
        "chief-analyst", "candidate-looser", "candidate-b")
    assert entry["replaced"] == load(small_model).version  # the data folder held a copy of it
    assert len(list(settings.model_path.parent.glob("model.replaced-*"))) == 1
