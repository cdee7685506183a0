"""The scorer in the pipeline: decisions rise with evidence, and a redelivered event re-sends its decision."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec

from schemas.decode import INPUT_TYPES
from schemas.internal import Decision, PersonEvent
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.model import load
from scorers.tiers import TierPolicy
from streams.local import LocalPipeline
from streams.person_state import decode_state
from tests.integration.scenario import SUBJECTS, subject_doc
from tests.integration.test_scoring_live import MIN, T, _call


def _pipeline(model: Path) -> LocalPipeline:
    p = LocalPipeline()
    p.processor.on_person = Decider(load(model), TierPolicy.load(), Ages(p.processor.lookup))
    for i, s in enumerate(SUBJECTS):
        p.feed("registry.subjects", msgspec.json.decode(subject_doc(s, i), type=INPUT_TYPES["registry.subjects"]))
    return p


PAY = {"event_id": "fcs-pay", "ts": T + 55 * MIN, "transfer_id": "TR-1", "status": "initiated",
       "payer_account": "6222000000000001", "payee_account": "6217999900001111", "payee_bank": "BOCOM",
       "amount_fen": 1_250_000, "channel": "mobile", "payee_first_seen": True}


def test_a_redelivered_event_resends_its_decision_under_the_same_id(small_model: Path) -> None:
    p = _pipeline(small_model)
    p.feed("signals.telecom", msgspec.json.decode(_call("fcs-call", T, 2280)[1], type=INPUT_TYPES["signals.telecom"]))
    p.feed("signals.payment", msgspec.json.decode(json.dumps(PAY), type=INPUT_TYPES["signals.payment"]))
    p.finish()
    first: list[Decision] = [o.value for o in p.sent["yujing.decisions"]]  # type: ignore[misc]
    assert first and first[-1].tier == "T1" and first[-1].transfer is not None
    # the crash case: the payment's person event arrives again after its state change was already stored
    replayed = PersonEvent(person="S_ALICE", subject_id="S_ALICE", source="signals.payment",
                           payment=msgspec.json.decode(json.dumps(PAY), type=INPUT_TYPES["signals.payment"]))
    out = p.processor.person_event(replayed)
    again = [o.value for o in out if o.topic == "yujing.decisions"]
    assert [(d.decision_id, d.tier, d.rose) for d in again] == [(first[-1].decision_id, "T1", True)]
    assert again[0].transfer == first[-1].transfer
    # a redelivered event re-sends a decision exactly when it made one the first time
    state = decode_state(p.processor.persons[b"S_ALICE"])
    assert state.risk is not None
    call_decided = any(entry[0] == "fcs-call|self" for entry in state.risk.decided)
    call = msgspec.json.decode(_call("fcs-call", T, 2280)[1], type=INPUT_TYPES["signals.telecom"])
    out = p.processor.person_event(PersonEvent(person="S_ALICE", subject_id="S_ALICE", source="signals.telecom",
                                               telecom=call))
    assert bool([o for o in out if o.topic == "yujing.decisions"]) == call_decided
    assert decode_state(p.processor.persons[b"S_ALICE"]) == state  # and the state is untouched
