"""The dispatch stage: a decision to stop-payment request, route, cooldown, warning and tasks (outputs returned)."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Awaitable, Callable, Sequence

import msgspec
import redis.exceptions

from dispatch.cooldown import Cooldown
from dispatch.erased import ErasedSubjects
from dispatch.escalation import Context, EscalationStore, outcome_effect
from dispatch.plan import Plan, Recipient, plan_step, plan_warning, recipient, stop_payment
from dispatch.review import Held, ReviewPolicy, ReviewStore, needs_review
from dispatch.routing import Route, RoutingConfig, match_routes
from schemas.internal import Assessment, Decision, Output
from schemas.records import TIER_RANK, Outcome
from streams.identity import decode_profile, subject_key

log = logging.getLogger(__name__)
# Redis not answering for now: gone, too slow, or a Redis Cluster between a master's loss and its replica's promotion
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ClusterDownError,
              redis.exceptions.TryAgainError)


@dataclass
class Dispatcher:
    """Routes decisions to people; Redis (through the cooldown) and the registry lookup are handed in."""

    routes: RoutingConfig
    cooldown: Cooldown
    lookup: Callable[[str], str | None]
    escalation: EscalationStore | None = None
    suppressed: int = 0  # warnings held back by the cooldown
    breaches: int = 0  # steps whose deadline passed unanswered
    on_suppressed: Callable[[], None] = lambda: None  # the metrics hear of each
    on_breach: Callable[[str, str], None] = lambda station, channel: None  # the step's station and channel
    # what the other Redis users keep of an erased person goes too: (store, step on the subject id and their lines)
    erasers: Sequence[tuple[str, Callable[[str, set[str]], Awaitable[Any]]]] = ()
    erased: ErasedSubjects | None = None  # erased subjects: nothing more is sent for them
    on_erase_failed: Callable[[str], None] = lambda store: None  # the metrics count each store an erasure missed
    review: ReviewStore | None = None  # decisions held for an analyst (quick assessment)
    review_policy: ReviewPolicy = ReviewPolicy("none", ())  # which decisions wait for one
    # the metrics hear of each held, confirmed, dismissed, raised, timed-out and late decision (with the analyst's
    # time to assess, wall clock ms, where there is one)
    on_review: Callable[[str, Decision | None, int | None], None] = lambda event, decision, wait_ms: None
    wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)  # when a decision was held, for time to assessment
    # Steps this worker is taking now: decisions dispatched together find the same steps due, and each would race
    # for every one of them (a Redis round trip each). Other workers still race for them in Redis.
    _taking: set[tuple[str, int]] = field(default_factory=set, repr=False)

    async def handle(self, decision: Decision, partition: int | None = None) -> list[Output]:
        """Everything one decision sends: first the person's held decisions whose deadline it reached (released
        before it, in their order), then a stop-payment request for a transfer, and for a rise its warning.
        `partition`: the one of `yujing.decisions` it came on, whose progress releases it if it is held."""
        out: list[Output] = await self._tick(decision.ts, decision.decision_id)
        if self.review is not None:
            out += await self._timed_out(await self.review.release_person(decision.person, decision.ts,
                                                                          by=decision.decision_id))
        if decision.transfer is None and not decision.rose:
            return out
        profile = decode_profile(self.lookup(subject_key(decision.subject_id))) if decision.subject_id else None
        who = recipient(decision, profile, self.routes.default_station)
        stop = stop_payment(decision, who, self.routes.stop_payment)
        if stop is not None:  # every transfer at T1, whatever the cooldown: money is moving
            out.append(Output("interception.payment", stop.transfer_id.encode(), stop))
        if not decision.rose:
            return out
        if await self._erased(decision.subject_id):
            return out  # erased since the decision was taken
        route = self._match(decision, who)
        rule = needs_review(self.review_policy, decision) if self.review is not None else None
        if rule is not None and self.review is not None:  # an analyst looks first; the deadline decides if none does
            await self.review.hold(Held(_context(decision, route, who), rule.name, decision.ts + rule.within_ms,
                                        self.wall_ms(), partition))
            self.on_review("held", decision, None)
            return out
        return out + await self._dispatch(decision, route, who)

    def _match(self, decision: Decision, who: Recipient) -> Route:
        return match_routes(self.routes, {"tier": decision.tier, "fraud_type": decision.fraud_type,
                                          "grid": who.grid_id, "station": who.station_id})

    async def _dispatch(self, decision: Decision, route: Route, who: Recipient) -> list[Output]:
        """The warning and the tasks due now, unless the cooldown holds it back; later steps wait in escalation."""
        if not await self.cooldown.acquire(who.subject_id, decision.tier, decision.ts, decision.decision_id):
            self.suppressed += 1
            self.on_suppressed()
            return []
        plan = plan_warning(decision, route, who)
        assert plan.warning is not None
        out = [Output("warnings", who.subject_id.encode(), plan.warning), *_task_outputs(plan)]
        if self.escalation is not None:
            await self.escalation.schedule(_context(decision, route, who), {
                step: decision.ts + route.steps[step].within_ms
                for step in range(len(route.steps) if route.mode == "all" else 1)})
        return out

    async def handle_assessment(self, assessment: Assessment) -> list[Output]:
        """An analyst's word on a held decision: confirm dispatches it as routed, dismiss sends nothing and labels it
        a false alarm on `outcomes`, raise dispatches it at the higher tier. A decision already taken (by the
        clock, or another assessment) is not dispatched again."""
        held = await self.review.take(assessment.decision_id) if self.review is not None else None
        if held is None:
            self.on_review("late", None, None)
            return []
        decision, wait_ms = held.context.decision, assessment.ts - held.held_wall_ms
        if await self._erased(decision.subject_id):
            return []
        who = held.context.recipient()
        if assessment.action == "dismiss":
            self.on_review("dismissed", decision, wait_ms)
            channel = self._route(held.context.route).steps[0].channel
            note = f"{assessment.analyst}: {assessment.reason}"[:1024]
            return [Output("outcomes", decision.decision_id.encode(), Outcome(
                warning_id=decision.decision_id, channel=channel, outcome="false_alarm",  # type: ignore[arg-type]
                ts=decision.ts, note=note))]
        if assessment.action == "raise" and assessment.tier is not None and \
                TIER_RANK[assessment.tier] > TIER_RANK[decision.tier]:
            decision = msgspec.structs.replace(decision, tier=assessment.tier)
            self.on_review("raised", decision, wait_ms)
            return await self._dispatch(decision, self._match(decision, who), who)
        self.on_review("confirmed", decision, wait_ms)
        return await self._dispatch(decision, self._route(held.context.route), who)

    async def erase(self, subject_id: str) -> None:
        """A person erased: marked so (decisions and steps under way send nothing more for them), then what
        dispatch keeps of them in Redis: their cooldown, their warnings' waiting steps, and (`erasers`, with their
        lines) the console's board, the task queues and the SMS adapter's waiting messages. Run before the identity
        table forgets them (their lines are read from it). Redis away raises (the whole erasure runs again); any
        other failure of one store is logged and counted, and the others go on."""
        profile = decode_profile(self.lookup(subject_key(subject_id)))
        phones = set(profile.phones) if profile else set()
        erased, escalation = self.erased, self.escalation
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        if erased is not None:
            steps.append(("mark", partial(erased.mark, subject_id)))
        steps.append(("cooldown", partial(self.cooldown.forget, subject_id)))
        if escalation is not None:
            steps.append(("escalation", partial(escalation.forget, subject_id)))
        if self.review is not None:
            steps.append(("review", partial(self.review.forget, subject_id)))
        steps += [(store, partial(step, subject_id, phones)) for store, step in self.erasers]
        for what, step in steps:
            try:
                await step()
            except REDIS_AWAY:
                raise
            except Exception:  # a malformed record in one store must not keep the person in all the others
                log.exception("an erasure did not reach %s", what)
                self.on_erase_failed(what)

    async def _erased(self, subject_id: str | None) -> bool:
        return self.erased is not None and await self.erased.holds(subject_id)

    async def registered(self, subject_id: str) -> None:
        """A registry record for the subject: if they were erased before, they are a person to warn again."""
        if self.erased is not None:
            await self.erased.clear(subject_id)

    async def handle_outcome(self, outcome: Outcome) -> list[Output]:
        """An outcome completes the step it answers, or (a failure) escalates it at once."""
        by = f"outcome:{outcome.warning_id}|{outcome.channel}|{outcome.outcome}|{outcome.ts}"
        out = await self._tick(outcome.ts, by)
        effect = outcome_effect(outcome.outcome)
        if self.escalation is None or effect is None:
            return out
        ctx = await self.escalation.context(outcome.warning_id)
        if ctx is None or await self._erased(ctx.decision.subject_id):
            return out
        route = self._route(ctx.route)
        for step in await self.escalation.pending_steps(outcome.warning_id, len(route.steps), by):
            if route.steps[step].channel == outcome.channel and \
                    await self.escalation.resolve(outcome.warning_id, step, by):
                if effect == "failed":
                    out += await self._escalate(ctx, route, step)
                break
        return out

    async def progressed(self, partition: int, watermark: int) -> list[Output]:
        """The decider's progress: every decision of this partition of `yujing.decisions` below `watermark` is
        dispatched, so its held decisions whose deadline that passed go out as routed (those of a person with a
        later decision went out before it)."""
        if self.review is None:
            return []
        return await self._timed_out(await self.review.release_partition(partition, watermark,
                                                                         by=f"progress:{partition}:{watermark}"))

    async def _tick(self, ts: int, by: str) -> list[Output]:
        """Move the pipeline clock for the record `by`; every step whose deadline it passed is a breach, and
        escalates (what `by` claimed before, read again after a crash, escalates again under the same ids)."""
        escalation = self.escalation
        if escalation is None:
            return []
        _, due = await escalation.tick(ts, by)
        out: list[Output] = []
        for warning_id, step in due:
            if (warning_id, step) in self._taking:
                continue  # another decision of this worker is taking it
            self._taking.add((warning_id, step))
            try:
                taken, ctx = await escalation.breach(warning_id, step, by)
            finally:
                self._taking.discard((warning_id, step))
            if not taken:
                continue  # another worker took it
            self.breaches += 1
            self.on_breach(*self._breached(ctx, step))
            if ctx is not None and not await self._erased(ctx.decision.subject_id):
                out += await self._escalate(ctx, self._route(ctx.route), step)
        return out

    async def _timed_out(self, released: list[Held]) -> list[Output]:
        """Dispatch held decisions their deadline released, as routed."""
        out: list[Output] = []
        for held in released:
            if await self._erased(held.context.decision.subject_id):
                continue
            self.on_review("timed_out", held.context.decision, None)
            out += await self._dispatch(held.context.decision, self._route(held.context.route),
                                        held.context.recipient())
        return out

    async def _escalate(self, ctx: Context, route: Route, step: int) -> list[Output]:
        """Plan the step after `step` on an escalating route, and wait for it in turn."""
        nxt = step + 1
        if route.mode != "escalate" or nxt >= len(route.steps) or self.escalation is None:
            return []
        plan = Plan(None)
        plan_step(ctx.decision, route, ctx.recipient(), nxt, plan)
        await self.escalation.schedule(ctx, {nxt: ctx.decision.ts + route.steps[nxt].within_ms})
        return _task_outputs(plan)

    def _breached(self, ctx: Context | None, step: int) -> tuple[str, str]:
        """The station and the channel of a step that passed its deadline (unknown once its context expired)."""
        if ctx is None:
            return "unknown", "unknown"
        steps = self._route(ctx.route).steps
        return ctx.who.get("station_id") or "unknown", steps[step].channel if step < len(steps) else "unknown"

    def _route(self, name: str) -> Route:
        return next(r for r in self.routes.routes if r.name == name)


def _context(decision: Decision, route: Route, who: Recipient) -> Context:
    return Context(decision=decision, route=route.name, who={k: str(v) for k, v in asdict(who).items()})


def _task_outputs(plan: Plan) -> list[Output]:
    out = [Output("dispatch.sms", t.to.encode(), t) for t in plan.sms]
    out += [Output("dispatch.phone", t.station_id.encode(), t) for t in plan.phone]
    out += [Output("dispatch.visit", t.grid_id.encode(), t) for t in plan.visit]
    return out
