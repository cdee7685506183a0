"""`yujing evaluate --live`: what a running pipeline sent for a simulated city, judged against its ground truth.

`yujing simulate --kafka` writes the city's truth (episodes, large legitimate transfers, retractions, the victims'
person keys) beside the records it streams; after the pipeline has worked through them, the `warnings` and
`interception.payment` topics say what it did. The figures are the lab's (scorers/lab/evaluate.py), on the live
outputs instead of a replay.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from deploy.config import Settings
from schemas.records import FraudWarning, PaymentInterception
from scorers.lab.city import EpisodeTruth, Retraction
from scorers.lab.evaluate import Verdicts, figures
from scorers.lab.recording import Recording
from streams.kafka_io import read_to_end


def live_recording(truth_dir: Path) -> Recording:
    """A recording holding only the truth of a streamed city (the live outputs come from the topics)."""
    city = json.loads((truth_dir / "city.json").read_text())
    truth = [msgspec.json.decode(line, type=EpisodeTruth)
             for line in (truth_dir / "truth.jsonl").read_bytes().splitlines() if line]
    cfg = city["config"]
    return Recording(config=cfg, truth=truth, large_legit=set(city["large_legit"]),
                     retractions=[msgspec.convert(r, Retraction) for r in city["retractions"]],
                     residents=cfg["residents"], days=cfg["days"], keys_of=city["keys_of"],
                     resident_keys=set(city["resident_keys"]))


def live_verdicts(rec: Recording, warnings: list[FraudWarning], stops: list[PaymentInterception]) -> Verdicts:
    """The warnings and stop-payments as the lab's verdicts; each warning's case elements read from its reasons."""
    out = Verdicts()
    retracted = {r.value_key.split(":", 1)[1]: r.value_key for r in rec.retractions}
    for w in sorted({w.warning_id: w for w in warnings}.values(), key=lambda w: (w.ts, w.warning_id)):
        named = tuple(key for value, key in retracted.items() if any(value in r.detail for r in w.reasons))
        rec.hit_keys.append(named)
        out.warnings[w.subject_id].append((w.ts, w.tier, len(rec.hit_keys) - 1))
    for s in {s.transfer_id: s for s in stops}.values():
        out.stops.append((s.payer_account, s.ts, s.transfer_id, s.amount_fen))
    return out


def live_figures(settings: Settings, truth_dir: Path) -> dict[str, Any]:
    """The figures of what the pipeline sent to `warnings` and `interception.payment` for the city in `truth_dir`."""
    rec = live_recording(truth_dir)
    warnings = [msgspec.json.decode(m.value, type=FraudWarning) for m in read_to_end(settings, settings.topic("warnings"))]
    stops = [msgspec.json.decode(m.value, type=PaymentInterception)
             for m in read_to_end(settings, settings.topic("interception.payment"))]
    figs = figures(rec, live_verdicts(rec, warnings, stops))
    figs.pop("fraud_type_right")
    return {"city": rec.config, "live": figs}
