"""Reading the field's outcomes and the decisions they answer from Kafka, for `yujing train --with-outcomes`."""
from __future__ import annotations

from deploy.config import Settings
from schemas.decode import InvalidRecord, decode_typed
from schemas.internal import Decision
from schemas.records import Outcome, is_progress
from scorers.lab.outcome_labels import outcome_rows
from streams.kafka_io import read_to_end


def outcome_labels(settings: Settings) -> list[tuple[list[float], int]]:
    """Labelled rows from `outcomes` joined to `yujing.decisions` by warning id; malformed messages skipped."""
    decisions, outcomes = [], []
    for msg in read_to_end(settings, settings.topic("yujing.decisions")):
        if is_progress(msg.key):  # the decider's progress
            continue
        try:
            decisions.append(decode_typed(Decision, msg.value))
        except InvalidRecord:
            continue
    for msg in read_to_end(settings, settings.topic("outcomes")):
        try:
            outcomes.append(decode_typed(Outcome, msg.value))  # a tombstone or a bad record: not a label
        except InvalidRecord:
            continue
    return outcome_rows(decisions, outcomes)
