"""Reading the field's outcomes and the decisions they answer from Kafka, for `yujing train --with-outcomes`."""
from __future__ import annotations

import msgspec

from deploy.config import Settings
from schemas.internal import Decision
from schemas.records import Outcome
from scorers.lab.outcome_labels import outcome_rows
from streams.kafka_io import read_to_end


def outcome_labels(settings: Settings) -> list[tuple[list[float], int]]:
    """Labelled rows from `outcomes` joined to `yujing.decisions` by warning id; malformed messages skipped."""
    decisions, outcomes = [], []
    for msg in read_to_end(settings, settings.topic("yujing.decisions")):
        try:
            decisions.append(msgspec.json.decode(msg.value, type=Decision))
        except msgspec.DecodeError:
            continue
    for msg in read_to_end(settings, settings.topic("outcomes")):
        try:
            outcomes.append(msgspec.json.decode(msg.value, type=Outcome))
        except msgspec.DecodeError:
            continue
    return outcome_rows(decisions, outcomes)
