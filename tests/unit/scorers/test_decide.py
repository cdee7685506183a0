"""The scorer in the pipeline: decisions rise with evidence, and a redelivered event re-sends its decision."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgspec

from schemas.decode import INPUT_TYPES
from schemas.internal import Decision, IndicatorHit, PersonEvent, Trigger
from schemas.units import HOUR_MS
from scorers.ages import Ages
from scorers.decide import Decider, transfer_in_progress
from scorers.model import load
from scorers.tiers import TierPolicy
from streams.local import LocalPipeline
from streams.person_state import (
    HitFact,
    PaymentFact,
    PersonState,
    encode_state,
)
from tests.integration.scenario import MIN, SUBJECTS, T, scam_call, subject_doc

# These tests are about the decider's bookkeeping (ids, redelivery, the watermark), not about what the model
# finds: a policy that warns at any score lets the refund scam below reach T1 whatever the small model scores.
EAGER = dataclasses.replace(TierPolicy.load(), t3_score=1e-6, t2_score=1e-6, t1_score=1e-6)
# ... and for what case elements alone do: no score ever warns
HITS_ONLY = dataclasses.replace(TierPolicy.load(), t3_score=1.0, t2_score=1.0, t1_score=1.0)


def _pipeline(model: Path, policy: TierPolicy = EAGER) -> LocalPipeline:
    p = LocalPipeline()
    p.processor.on_person = Decider(load(model), policy, Ages(p.processor.lookup))
    for i, s in enumerate(SUBJECTS):
        p.feed("registry.subjects", msgspec.json.decode(subject_doc(s, i), type=INPUT_TYPES["registry.subjects"]))
    return p


# a refund scam: a long call, a meeting app installed while on it, then a first transfer to a new payee
APP = {"event_id": "fcs-app", "ts": T + 30 * MIN, "subscriber": "+8613800000001", "kind": "app_install",
       "app": "com.tencent.wemeet.app"}
PAY = {"event_id": "fcs-pay", "ts": T + 55 * MIN, "transfer_id": "TR-1", "status": "initiated",
       "payer_account": "6222000000000001", "payee_account": "6217999900001111", "payee_bank": "BOCOM",
       "amount_fen": 1_250_000, "channel": "mobile", "payee_first_seen": True}


def script_events() -> list[PersonEvent]:
    """Alice's refund scam as person events: the call, the install on the call, the transfer."""
    call = msgspec.json.decode(scam_call("fcs-call", T, 2280)[1], type=INPUT_TYPES["signals.telecom"])
    app = msgspec.json.decode(json.dumps(APP), type=INPUT_TYPES["signals.domain"])
    pay = msgspec.json.decode(json.dumps(PAY), type=INPUT_TYPES["signals.payment"])
    alice = {"person": "S_ALICE", "subject_id": "S_ALICE"}
    return [PersonEvent(**alice, source="signals.telecom", telecom=call),
            PersonEvent(**alice, source="signals.domain", domain=app),
            PersonEvent(**alice, source="signals.payment", payment=pay)]


def test_a_redelivered_event_resends_its_decision_under_the_same_id(small_model: Path) -> None:
    p = _pipeline(small_model)
    p.feed("signals.telecom",
           msgspec.json.decode(scam_call("fcs-call", T, 2280)[1], type=INPUT_TYPES["signals.telecom"]))
    p.feed("signals.domain", msgspec.json.decode(json.dumps(APP), type=INPUT_TYPES["signals.domain"]))
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
    state = p.processor.persons[b"S_ALICE"]
    before = encode_state(state)  # states are objects, changed in place: compare what the changelog would get
    assert state.risk is not None
    call_decided = any(entry[0] == "fcs-call|self" for entry in state.risk.decided)
    call = msgspec.json.decode(scam_call("fcs-call", T, 2280)[1], type=INPUT_TYPES["signals.telecom"])
    out = p.processor.person_event(PersonEvent(person="S_ALICE", subject_id="S_ALICE", source="signals.telecom",
                                               telecom=call))
    assert bool([o for o in out if o.topic == "yujing.decisions"]) == call_decided
    assert encode_state(p.processor.persons[b"S_ALICE"]) == before  # and the state is untouched


MULE = "6217999900002222"


def _dan(hit_ts: int, hit_end: int | None) -> tuple[PersonState, PersonEvent, PersonEvent]:
    """Dan's transfer to an account at T, a hit on that account known at `hit_ts` and ending at `hit_end`, and
    the person events of the transfer and of the hit."""
    hit = HitFact(hit_ts, T - 5 * HOUR_MS, f"account:{MULE}", "investment", 0.9, "reverse", hit_ts, "case-9", 0,
                  "dan-pay-0", hit_end)
    pay = PaymentFact(T, "TR-9", "initiated", "out", MULE, 500_000, False, "mobile", "dan-pay-1", "A1")
    pay_event = PersonEvent(person="S_DAN", source="signals.payment", payment=msgspec.json.decode(json.dumps(
        {**PAY, "event_id": "dan-pay-1", "ts": T, "transfer_id": "TR-9", "payee_account": MULE}),
        type=INPUT_TYPES["signals.payment"]))
    hit_event = PersonEvent(person="S_DAN", source="hit", hit=IndicatorHit(
        value_key=f"account:{MULE}", fraud_type="investment", confidence=0.9, source="case-9", indicator_ts=hit_ts,
        contact_ts=T - 5 * HOUR_MS, event_id="dan-pay-0", mode="reverse"))
    return PersonState(person="S_DAN", hits=[hit], payments=[pay]), pay_event, hit_event


def test_a_payee_is_a_case_account_only_until_its_retraction() -> None:
    for end, flagged in ((None, True), (T + 1, True), (T, False), (T - MIN, False)):
        state, pay_event, _ = _dan(T - HOUR_MS, end)  # flagged an hour before the transfer
        transfer, got = transfer_in_progress(state, pay_event, T, 30 * MIN)
        assert transfer is not None and got == flagged, end
    for end, flagged in ((None, True), (T + 6 * MIN, True), (T + 5 * MIN, False)):
        state, _, hit_event = _dan(T + 5 * MIN, end)  # flagged while the transfer is under way: the hit comes after
        transfer, got = transfer_in_progress(state, hit_event, T + 5 * MIN, 30 * MIN)
        assert (transfer is not None, got) == (flagged, flagged), end


FRAUD_NUMBER = "+8617000009999"


def _feed(p: LocalPipeline, topic: str, doc: dict) -> None:
    p.feed(topic, msgspec.json.decode(json.dumps(doc), type=INPUT_TYPES[topic]))


def _plain_call(event_id: str, subscriber: str, counterpart: str, ts: int, duration_s: int = 60) -> dict:
    return {"event_id": event_id, "ts": ts, "kind": "call", "direction": "in", "subscriber": subscriber,
            "counterpart": counterpart, "duration_s": duration_s}


def _case(kind: str, value: str, action: str, ts: int) -> dict:
    return {"type": kind, "value": value, "action": action, "fraud_type": "impersonate_authority",
            "confidence": 0.9, "source": f"case-{kind}", "ts": ts}


def _dan_pays_the_mule(event_id: str, ts: int) -> dict:
    return {**PAY, "event_id": event_id, "ts": ts, "transfer_id": event_id, "payer_account": "6222000000000041",
            "payee_account": MULE, "amount_fen": 20_000, "payee_first_seen": False}


def test_nobody_is_warned_through_an_indicator_after_its_retraction(small_model: Path) -> None:
    """Alice and Dan contacted a number and an account before they were flagged (0.9) and are warned then; both are
    retracted an hour later. After that nobody is warned through them: not Alice on her later calls, not Dan paying
    the account again, not Bob, whose call at 2 h the index matched before it read the retraction at 1 h (the
    retraction is fed late, as a lagging indicator partition would deliver it), not Carol, calling at 3 h."""
    p = _pipeline(small_model, HITS_ONLY)
    r = T + HOUR_MS
    _feed(p, "signals.telecom", _plain_call("alice-1", "+8613800000001", FRAUD_NUMBER, T - 5 * HOUR_MS))
    _feed(p, "signals.payment", _dan_pays_the_mule("dan-1", T - 5 * HOUR_MS))
    _feed(p, "intel.indicators", _case("phone", FRAUD_NUMBER, "add", T))
    _feed(p, "intel.indicators", _case("account", MULE, "add", T))
    _feed(p, "signals.telecom", _plain_call("bob-1", "+8613800000002", FRAUD_NUMBER, T + 2 * HOUR_MS))
    _feed(p, "intel.indicators", _case("phone", FRAUD_NUMBER, "retract", r))
    _feed(p, "intel.indicators", _case("account", MULE, "retract", r))
    _feed(p, "signals.telecom", _plain_call("carol-1", "+8613800000003", FRAUD_NUMBER, T + 3 * HOUR_MS))
    _feed(p, "signals.telecom", _plain_call("alice-2", "+8613800000001", "+8613912345678", T + 3 * HOUR_MS, 900))
    _feed(p, "signals.telecom", _plain_call("alice-3", "+8613800000001", FRAUD_NUMBER, T + 4 * HOUR_MS, 600))
    _feed(p, "signals.payment", _dan_pays_the_mule("dan-2", T + 4 * HOUR_MS))
    p.finish()
    decisions: list[Decision] = [o.value for o in p.sent["yujing.decisions"]]  # type: ignore[misc]
    # before the retraction the case elements count: Alice and Dan are warned when they became known
    before = {(d.person, d.tier, d.ts) for d in decisions if d.ts < r}
    assert before == {("S_ALICE", "T3", T), ("S_DAN", "T3", T)}, before
    alice = next(d for d in decisions if d.person == "S_ALICE")
    assert "alice-1" in alice.evidence and [x.code for x in alice.reasons][:1] == ["CASE_ELEMENT_CONTACT"]
    assert [(d.person, d.tier, d.ts, d.transfer) for d in decisions if d.ts >= r] == []
    assert p.sent["interception.payment"] == []
    triggers: list[Trigger] = [o.value for o in p.sent["yujing.triggers"]]  # type: ignore[misc]
    assert "S_CAROL" not in {t.person for t in triggers}  # a contact after the retraction is no hit
    assert "S_BOB" in {t.person for t in triggers}  # his hit was on its way: sent, folded, then voided


def test_each_transfer_to_a_case_account_is_asked_to_stop_once(small_model: Path) -> None:
    """Dan pays a case account twice. The second transfer justifies T1 twice: when it arrives (the account is
    already a hit of his) and when the index matches it (a hit of its own); the bank is asked once per transfer."""
    p = _pipeline(small_model, HITS_ONLY)
    _feed(p, "intel.indicators", _case("account", MULE, "add", T))
    _feed(p, "signals.payment", _dan_pays_the_mule("dan-1", T + HOUR_MS))
    _feed(p, "signals.payment", _dan_pays_the_mule("dan-2", T + 2 * HOUR_MS))
    p.finish()
    decisions: list[Decision] = [o.value for o in p.sent["yujing.decisions"]]  # type: ignore[misc]
    assert sorted(d.transfer.transfer_id for d in decisions if d.transfer is not None) == ["dan-1", "dan-2"]
    assert len({d.decision_id for d in decisions}) == len(decisions)


def test_a_decision_whose_record_failed_is_taken_again_not_lost(small_model: Path) -> None:
    """A decision that fails while its record is made (here the fraud type, once) leaves the person's tier as it
    was: taken again, it rises again and is sent, as a run without the failure sends it."""
    docs = [("signals.telecom", json.loads(scam_call("fcs-call", T, 2280)[1])), ("signals.domain", APP),
            ("signals.payment", PAY)]

    def run(p: LocalPipeline) -> list[tuple[str, str, bool]]:
        for topic, doc in docs:
            record = msgspec.json.decode(json.dumps(doc), type=INPUT_TYPES[topic])
            try:
                p.feed(topic, record)
            except RuntimeError:
                p.feed(topic, record)  # read again, as a worker reads again a record whose processing failed
        p.finish()
        return [(d.decision_id, d.tier, d.rose) for d in (o.value for o in p.sent["yujing.decisions"])]  # type: ignore[attr-defined]

    expected = run(_pipeline(small_model))
    flaky = _pipeline(small_model)
    decider = flaky.processor.on_person
    assert isinstance(decider, Decider)
    real, failed = decider.model.fraud_type, []

    def fraud_type_failing_once(x: list[float]) -> tuple[str, float]:
        if not failed:
            failed.append(x)
            raise RuntimeError("the record could not be made")
        return real(x)

    decider.model.fraud_type = fraud_type_failing_once  # type: ignore[method-assign]
    assert expected and run(flaky) == expected and failed
