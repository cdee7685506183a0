"""The scorer in the stream: after each event that adds evidence, score, tier, classify, explain, decide."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from schemas.internal import Decision, Output, PersonEvent, TransferRef
from schemas.units import DAY_MS, HOUR_MS
from scorers.features import Snapshot, features, script_stages
from scorers.fraud_types import type_features
from scorers.model import Model
from scorers.reasons import reasons
from scorers.script import script_before
from scorers.tiers import Evidence, TierDecision, TierPolicy, assign_tier
from streams.person_state import (
    PaymentFact,
    PersonState,
    Update,
    as_of,
    earliest_evidence,
    episode_warning_id,
    event_key,
    event_time,
    hit_live,
    trigger_id,
)

MAX_REMEMBERED = 8  # decisions a person's state remembers, to re-send them if their events are redelivered


def case_account(state: PersonState, account: str, now: int, strong: float = 0.8) -> bool:
    """Whether the account is a case element of high confidence at `now` (a live hit on it: not retracted)."""
    return any(h.value_key == f"account:{account}" and h.confidence >= strong and h.mode != "fanout"
               and hit_live(h, now) for h in state.hits)


def transfer_in_progress(state: PersonState, pe: PersonEvent, now: int, window_ms: int,
                         strong: float = 0.8) -> tuple[PaymentFact | None, bool]:
    """The outgoing transfer this event concerns, if any, and whether its payee is a case account.

    Either the event initiates it, or it is a hit on an account the person has just started paying: the hit
    comes back from the value index after the transfer, so both orders must lead to the stop-payment.
    """
    if pe.payment is not None and pe.role == "self" and pe.payment.status == "initiated":
        fact = next((p for p in reversed(state.payments) if p.event_id == pe.payment.event_id), None)
        if fact is None:
            return None, False
        return fact, case_account(state, fact.counterparty, now, strong)
    if pe.hit is not None and pe.hit.value_key.startswith("account:") and pe.hit.confidence >= strong:
        payee = pe.hit.value_key.split(":", 1)[1]
        if not case_account(state, payee, now, strong):
            return None, False  # retracted by this moment: the hit was still on its way when that was read
        # in event time: a transfer finished only after the hit's moment was still under way then, whichever of
        # the two this worker happened to read first (two workers read them in either order)
        done = {p.transfer_id for p in state.payments
                if p.status in ("completed", "failed", "held") and p.ts <= now}
        for p in reversed(state.payments):
            if (p.direction == "out" and p.status == "initiated" and p.counterparty == payee
                    and 0 <= now - p.ts <= window_ms and p.transfer_id not in done):
                return p, True
    return None, False


def moment_evidence(state: PersonState, pe: PersonEvent, now: int, x: list[float],
                    window_ms: int) -> tuple[Evidence, PaymentFact | None, bool]:
    """The tier evidence of this moment besides the score, with the transfer it concerns and whether its payee
    is a case account (used live and by the threshold tuning, so both judge the same thing)."""
    transfer, flagged = transfer_in_progress(state, pe, now, window_ms)
    after = len(script_before(state, transfer.ts)) if transfer is not None else 0
    ev = Evidence(transfer_now=transfer is not None, transfer_to_new_payee=bool(transfer and transfer.first_contact),
                  payee_flagged=flagged, strong_hit=x[0] > 0, stages=script_stages(x), transfer_after_stages=after,
                  news=pe.retraction is None)
    return ev, transfer, flagged


@dataclass(frozen=True)
class Moment:
    """What a decision at event time `now` sees: the state as of then, its features and tier evidence, the
    transfer it concerns (with whether the payee is a case account), and where a new episode would start."""

    now: int
    seen: PersonState
    snapshot: Snapshot
    x: list[float]
    evidence: Evidence
    transfer: PaymentFact | None
    payee_flagged: bool
    episode_start: int


def observe(state: PersonState, pe: PersonEvent, age: int | None, policy: TierPolicy) -> Moment:
    """The moment a decision on `pe` judges: the same live and in the lab (scorers/lab/recording.py)."""
    now = event_time(pe)
    seen = as_of(state, now)  # facts folded ahead of this decision (by event time) are not its evidence
    snap = Snapshot(seen, now, age)
    x = features(snap)
    ev, transfer, flagged = moment_evidence(seen, pe, now, x, policy.t1_transfer_window_ms)
    return Moment(now, seen, snap, x, ev, transfer, flagged, earliest_evidence(seen, now, policy.quiet_ms))


class Decider:
    """The person hook of the pipeline: model + tier policy → decisions on `yujing.decisions`."""

    def __init__(self, model: Model, policy: TierPolicy, age_of: Callable[[str | None], int | None]) -> None:
        self.model = model
        self.policy = policy
        self.fast = model.fast()
        self.means = model.feature_means()
        self.age_of = age_of

    def __call__(self, state: PersonState, pe: PersonEvent, update: Update) -> list[Output]:
        if not update.noted:
            return []  # nothing new to judge
        key = event_key(pe)
        if update.replay:
            # Redelivered after a crash: the tier is already in the state, but the decision this event made may
            # not have been sent. Send it again, under the same id; otherwise there is nothing to decide.
            done = next((entry for entry in (state.risk.decided if state.risk else []) if entry[0] == key), None)
            return self._decide(state, pe, replayed=(done[1], done[2] == "rose")) if done else []
        return self._decide(state, pe, update=update, key=key)

    def _decide(self, state: PersonState, pe: PersonEvent, update: Update | None = None, key: str = "",
                replayed: tuple[str, bool] | None = None) -> list[Output]:
        m = observe(state, pe, self.age_of(state.subject_id), self.policy)
        score = self.fast.score(m.x)
        if replayed is not None and state.risk is not None:
            tier, rose = replayed
            d = TierDecision(tier, rose, tier == "T1" and m.transfer is not None, state.risk)
        else:
            d = assign_tier(score, m.evidence, state.risk, m.now, self.policy, m.episode_start,
                            m.transfer.transfer_id if m.transfer is not None else None)
            if (d.rose or d.stop_payment) and d.risk is not None:
                entry = [key, d.tier or "", "rose" if d.rose else "stop"]
                d.risk.decided = (d.risk.decided + [entry])[-MAX_REMEMBERED:]
        made = (d.rose or d.stop_payment) and d.tier is not None and d.risk is not None
        out = [self._decision(state, m, d, score)] if made else []
        # Only once the record is made: a failure leaves the tier as it was, and the decision is taken again.
        if d.risk != state.risk and update is not None:
            state.risk = d.risk
            update.changed = True
        return out

    def _decision(self, state: PersonState, m: Moment, d: TierDecision, score: float) -> Output:
        """The decision record of a rise or a stop-payment, with its type, reasons, evidence and ids."""
        assert d.tier is not None and d.risk is not None
        now, seen, transfer = m.now, m.seen, m.transfer
        fraud_type, p_type = self.model.fraud_type(type_features(m.x, seen, now))
        why = reasons(m.snapshot, self.fast.contributions(m.x, self.means), payee_flagged=m.payee_flagged)
        evidence = sorted({h.event_id for h in seen.hits if now - 72 * HOUR_MS <= h.ts and hit_live(h, now)}
                          | {c.event_id for c in seen.calls if now - DAY_MS <= c.ts <= now}
                          | ({transfer.event_id} if transfer else set()))[-20:]
        ref = None
        if d.stop_payment and transfer is not None:
            cases = sorted({h.source for h in seen.hits if h.source and hit_live(h, now)})[:5]
            ref = TransferRef(transfer_id=transfer.transfer_id, payer_account=transfer.account,
                              payee_account=transfer.counterparty, amount_fen=transfer.amount_fen, ts=now,
                              payee_bank=transfer.counterparty_bank, payer_bank=transfer.own_bank, case_refs=cases)
        decision_id = (episode_warning_id(state.person, d.risk.episode_ts, d.tier) if d.rose
                       else trigger_id(state.person, "stop", transfer.transfer_id if transfer else str(now)))
        decision = Decision(decision_id=decision_id, person=state.person, subject_id=state.subject_id,
                            tier=d.tier, rose=d.rose, fraud_type=fraud_type,  # type: ignore[arg-type]
                            type_probability=round(p_type, 4), score=round(score, 6), reasons=why, evidence=evidence,
                            ts=now, episode_ts=d.risk.episode_ts, model_version=self.model.version,
                            policy_version=self.policy.version, transfer=ref, features=[round(v, 6) for v in m.x])
        return Output("yujing.decisions", state.person.encode(), decision)
