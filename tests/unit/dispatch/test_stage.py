"""The dispatch stage over in-memory stores: what a decision and an outcome send, cooldown and escalation included.

The stores follow the rules of their Redis versions (the cooldown's `cooldown_allows`, escalation's sorted set of
deadlines); the Redis versions are tested against Redis in tests/integration.
"""
from __future__ import annotations

import asyncio

from dispatch.cooldown import RANK, Latest, cooldown_allows
from dispatch.escalation import Context
from dispatch.routing import load_routes
from dispatch.stage import Dispatcher
from schemas.internal import Decision, DecisionReason, Output, TransferRef
from schemas.records import Outcome, Subject
from schemas.units import HOUR_MS, MINUTE_MS
from streams.identity import identity_changes

T = 1_764_547_200_000  # 08:00 in the city (UTC+8)
ROUTES = load_routes()
WANG = Subject(subject_id="S1", phones=["+8613800000001"], accounts=["A1"], birth_year=1950, grid_id="G7",
               station_id="ST001", name_masked="王*", ts=T)


class MemoryCooldown:
    """The cooldown's rule over a dict (Cooldown keeps the same in Redis)."""

    def __init__(self, cooldown_ms: int) -> None:
        self.latest: dict[str, Latest] = {}
        self.cooldown_ms = cooldown_ms

    async def acquire(self, person: str, tier: str, ts: int, warning_id: str) -> bool:
        latest = self.latest.get(person)
        allowed = cooldown_allows(latest, RANK[tier], ts, warning_id, self.cooldown_ms)
        if allowed and (latest is None or latest.warning_id != warning_id):
            self.latest[person] = Latest(RANK[tier], ts, warning_id)
        return allowed


class MemoryEscalation:
    """Escalation's pending steps, contexts and clock in dicts (EscalationStore keeps them in Redis), and what each
    record claimed (a record read again claims it again)."""

    def __init__(self) -> None:
        self.clock = 0
        self.pending: dict[tuple[str, int], int] = {}
        self.contexts: dict[str, Context] = {}
        self.breaches = 0
        self.breached: dict[str, set[tuple[str, int]]] = {}
        self.answered: dict[str, set[tuple[str, int]]] = {}

    async def tick(self, ts: int, by: str) -> tuple[int, list[tuple[str, int]]]:
        self.clock = max(self.clock, ts)
        due = {k for k, deadline in self.pending.items() if deadline < self.clock}
        return self.clock, sorted(due | self.breached.get(by, set()))

    async def schedule(self, ctx: Context, deadlines: dict[int, int]) -> None:
        self.contexts[ctx.decision.decision_id] = ctx
        for step, deadline in deadlines.items():
            self.pending[(ctx.decision.decision_id, step)] = deadline

    async def resolve(self, warning_id: str, step: int, by: str) -> bool:
        if self.pending.pop((warning_id, step), None) is not None:
            self.answered.setdefault(by, set()).add((warning_id, step))
            return True
        return (warning_id, step) in self.answered.get(by, set())

    async def breach(self, warning_id: str, step: int, by: str) -> tuple[bool, Context | None]:
        if self.pending.pop((warning_id, step), None) is not None:
            self.breached.setdefault(by, set()).add((warning_id, step))
            self.breaches += 1
        elif (warning_id, step) not in self.breached.get(by, set()):
            return False, None
        return True, self.contexts.get(warning_id)

    async def pending_steps(self, warning_id: str, count: int, by: str) -> list[int]:
        mine = {s for wid, s in [*self.pending, *self.answered.get(by, set())] if wid == warning_id}
        return sorted(s for s in mine if s < count)

    async def context(self, warning_id: str) -> Context | None:
        return self.contexts.get(warning_id)


def decision(tier: str, ts: int = T, fraud_type: str = "romance", rose: bool = True, decision_id: str = "",
             transfer: TransferRef | None = None) -> Decision:
    return Decision(decision_id=decision_id or f"w-{tier}-{ts}", person="S1", subject_id="S1", tier=tier,  # type: ignore[arg-type]
                    rose=rose, fraud_type=fraud_type, type_probability=0.5, score=0.3,  # type: ignore[arg-type]
                    reasons=[DecisionReason(code="X", detail="y")], evidence=["e"], ts=ts, episode_ts=ts,
                    model_version="m", policy_version="p", transfer=transfer)


def dispatcher() -> tuple[Dispatcher, MemoryEscalation, list[str]]:
    table, _ = identity_changes(None, WANG)
    heard: list[str] = []
    escalation = MemoryEscalation()
    d = Dispatcher(ROUTES, MemoryCooldown(ROUTES.cooldown_ms), table.get, escalation,  # type: ignore[arg-type]
                   on_suppressed=lambda: heard.append("suppressed"), on_breach=lambda station, channel: heard.append(f"breach {station} {channel}"))
    return d, escalation, heard


def topics(outputs: list[Output]) -> list[str]:
    return sorted(o.topic for o in outputs)


def test_a_t2_warning_goes_out_with_its_call_and_visit_and_a_second_within_the_cooldown_does_not() -> None:
    d, escalation, heard = dispatcher()
    first = asyncio.run(d.handle(decision("T2")))
    assert topics(first) == ["dispatch.phone", "dispatch.visit", "warnings"]
    assert sorted(escalation.pending) == [("w-T2-" + str(T), 0), ("w-T2-" + str(T), 1)]
    again = asyncio.run(d.handle(decision("T2", T + HOUR_MS)))
    assert again == [] and heard == ["suppressed"] and d.suppressed == 1


def test_the_same_decision_redelivered_sends_the_same_ids_again() -> None:
    d, _, _ = dispatcher()
    first = asyncio.run(d.handle(decision("T3")))
    second = asyncio.run(d.handle(decision("T3")))
    assert [o.value for o in first] == [o.value for o in second] and topics(first) == ["dispatch.sms", "warnings"]


def test_every_transfer_at_t1_asks_for_a_stop_payment_whatever_the_cooldown() -> None:
    d, _, heard = dispatcher()
    ref = TransferRef(transfer_id="tr1", payer_account="A1", payee_account="M1", amount_fen=500_000, ts=T)
    out = asyncio.run(d.handle(decision("T1", transfer=ref)))
    assert topics(out) == ["dispatch.phone", "dispatch.visit", "interception.payment", "warnings"]
    ref2 = TransferRef(transfer_id="tr2", payer_account="A1", payee_account="M1", amount_fen=700_000, ts=T + 60_000)
    out2 = asyncio.run(d.handle(decision("T1", T + 60_000, rose=False, transfer=ref2)))
    assert topics(out2) == ["interception.payment"] and out2[0].value.transfer_id == "tr2" and heard == []


def test_a_failed_sms_escalates_to_the_call_at_once() -> None:
    d, escalation, _ = dispatcher()
    asyncio.run(d.handle(decision("T3", decision_id="w3")))
    failed = Outcome(warning_id="w3", channel="sms", outcome="sms_failed", ts=T + MINUTE_MS)
    out = asyncio.run(d.handle_outcome(failed))
    assert topics(out) == ["dispatch.phone"] and list(escalation.pending) == [("w3", 1)]


def test_a_delivered_sms_settles_the_step_and_nothing_escalates() -> None:
    d, escalation, heard = dispatcher()
    asyncio.run(d.handle(decision("T3", decision_id="w3")))
    asyncio.run(d.handle_outcome(Outcome(warning_id="w3", channel="sms", outcome="sms_delivered", ts=T + MINUTE_MS)))
    later = asyncio.run(d.handle(decision("T3", T + 30 * HOUR_MS, decision_id="other")))
    assert list(escalation.pending) == [("other", 0)] and heard == [] and "dispatch.phone" not in topics(later)


def test_a_deadline_passed_in_event_time_is_a_breach_and_the_next_step_goes() -> None:
    d, escalation, heard = dispatcher()
    asyncio.run(d.handle(decision("T2", fraud_type="impersonate_authority", decision_id="wa")))
    assert list(escalation.pending) == [("wa", 0)]  # escalating route: the call first, the visit after
    tick = Outcome(warning_id="unrelated", channel="phone", outcome="call_answered", ts=T + 61 * MINUTE_MS)
    out = asyncio.run(d.handle_outcome(tick))
    assert topics(out) == ["dispatch.visit"] and heard == ["breach ST001 phone"] \
        and list(escalation.pending) == [("wa", 1)]  # the call's deadline passed, counted for its station


def test_decisions_dispatched_at_once_race_for_a_due_step_once() -> None:
    d, escalation, heard = dispatcher()
    asyncio.run(d.handle(decision("T2", fraud_type="impersonate_authority", decision_id="wa")))
    asked: list[tuple[str, int]] = []
    take = escalation.breach

    async def breach(warning_id: str, step: int, by: str) -> tuple[bool, Context | None]:
        asked.append((warning_id, step))
        await asyncio.sleep(0)  # a Redis round trip: the other decisions run meanwhile
        return await take(warning_id, step, by)

    escalation.breach = breach  # type: ignore[method-assign]
    later = [decision("T3", ts=T + 61 * MINUTE_MS + i, rose=False, decision_id=f"late-{i}") for i in range(5)]

    async def together() -> None:
        await asyncio.gather(*(d.handle(x) for x in later))

    asyncio.run(together())
    assert asked == [("wa", 0)] and heard == ["breach ST001 phone"]  # one decision took the due step; the others left it


def test_a_record_read_again_after_a_crash_escalates_again_under_the_same_ids() -> None:
    # killed after Redis took the step and before the sends: the record comes again and must send the same tasks
    d, escalation, heard = dispatcher()
    asyncio.run(d.handle(decision("T2", fraud_type="impersonate_authority", decision_id="wa")))
    passing = decision("T3", ts=T + 61 * MINUTE_MS, rose=False, decision_id="tick")
    first, again = asyncio.run(d.handle(passing)), asyncio.run(d.handle(passing))
    assert topics(first) == ["dispatch.visit"] and [o.value for o in again] == [o.value for o in first]
    assert escalation.breaches == 1  # counted once in the store
    other = decision("T3", ts=T + 62 * MINUTE_MS, rose=False, decision_id="another")
    assert asyncio.run(d.handle(other)) == []  # another record: the step is taken

    d, escalation, heard = dispatcher()
    asyncio.run(d.handle(decision("T2", fraud_type="impersonate_authority", decision_id="wa")))
    failed = Outcome(warning_id="wa", channel="phone", outcome="unreachable", ts=T + 5 * MINUTE_MS)
    first, again = asyncio.run(d.handle_outcome(failed)), asyncio.run(d.handle_outcome(failed))
    assert topics(first) == ["dispatch.visit"] and [o.value for o in again] == [o.value for o in first]
    answered = Outcome(warning_id="wa", channel="phone", outcome="call_answered", ts=T + 6 * MINUTE_MS)
    assert asyncio.run(d.handle_outcome(answered)) == []  # another record: the call was already answered


class MemoryErased:
    """Erased subjects in a set (ErasedSubjects keeps them in Redis)."""

    def __init__(self) -> None:
        self.subjects: set[str] = set()

    async def mark(self, subject_id: str) -> None:
        self.subjects.add(subject_id)

    async def holds(self, subject_id: str | None) -> bool:
        return subject_id in self.subjects

    async def clear(self, subject_id: str) -> None:
        self.subjects.discard(subject_id)


def test_after_an_erasure_a_decision_under_way_asks_only_its_stop_payment_and_no_step_escalates() -> None:
    """S1 is warned at T2 (a call and a visit wait), then erased. A T1 decision about S1 still in the topic gets its
    stop-payment (money is moving) but no warning or task, and the waiting steps' deadlines pass without a next
    step; a store that fails in the erasure is counted and the others are still erased."""
    d, escalation, heard = dispatcher()
    d.erased = MemoryErased()  # type: ignore[assignment]
    forgotten: list[tuple[str, set[str]]] = []

    async def forget(subject_id: str, phones: set[str]) -> None:
        forgotten.append((subject_id, phones))

    class BrokenEscalation(MemoryEscalation):
        async def forget(self, subject_id: str) -> int:
            raise ValueError("a context that does not decode")

    async def cooldown_forget(person: str) -> None:
        heard.append(f"cooldown of {person} forgotten")

    asyncio.run(d.handle(decision("T2")))
    broken = BrokenEscalation()
    broken.pending, broken.contexts = escalation.pending, escalation.contexts
    d.escalation = broken
    d.cooldown.forget = cooldown_forget  # type: ignore[attr-defined]
    d.erasers, failed = [("board", forget)], []
    d.on_erase_failed = failed.append
    asyncio.run(d.erase("S1"))
    assert forgotten == [("S1", {"+8613800000001"})] and "cooldown of S1 forgotten" in heard
    assert failed == ["escalation"]
    ref = TransferRef(transfer_id="tr1", payer_account="A1", payee_account="M1", amount_fen=500_000, ts=T)
    out = asyncio.run(d.handle(decision("T1", ts=T + 2 * 86_400_000, transfer=ref)))  # every deadline passed
    assert topics(out) == ["interception.payment"]
    asyncio.run(d.registered("S1"))  # registered again: warned again
    assert "warnings" in topics(asyncio.run(d.handle(decision("T1", ts=T + 3 * 86_400_000))))
