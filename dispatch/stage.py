"""The dispatch stage: a decision to stop-payment request, route, cooldown, warning and tasks (outputs returned)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from dispatch.cooldown import Cooldown
from dispatch.plan import plan_warning, recipient, stop_payment
from dispatch.routing import RoutingConfig, match_routes
from schemas.internal import Decision
from streams.identity import decode_profile, subject_key
from streams.processor import Output


@dataclass
class Dispatcher:
    """Routes decisions to people; Redis (through the cooldown) and the registry lookup are handed in."""

    routes: RoutingConfig
    cooldown: Cooldown
    lookup: Callable[[str], str | None]
    suppressed: int = 0  # warnings held back by the cooldown (for the metrics)

    async def handle(self, decision: Decision) -> list[Output]:
        """Everything one decision sends: a stop-payment request for a transfer, and for a rise its warning."""
        out: list[Output] = []
        stop = stop_payment(decision)
        if stop is not None:  # every transfer at T1, whatever the cooldown: money is moving
            out.append(Output("interception.payment", stop.transfer_id.encode(), stop))
        if not decision.rose:
            return out
        profile = decode_profile(self.lookup(subject_key(decision.subject_id))) if decision.subject_id else None
        who = recipient(decision, profile, self.routes.default_station)
        route = match_routes(self.routes, {"tier": decision.tier, "fraud_type": decision.fraud_type,
                                           "grid": who.grid_id, "station": who.station_id})
        if not await self.cooldown.acquire(who.subject_id, decision.tier, decision.ts, decision.decision_id):
            self.suppressed += 1
            return out
        plan = plan_warning(decision, route, who)
        out.append(Output("warnings", who.subject_id.encode(), plan.warning))
        out += [Output("dispatch.sms", t.to.encode(), t) for t in plan.sms]
        out += [Output("dispatch.phone", t.station_id.encode(), t) for t in plan.phone]
        out += [Output("dispatch.visit", t.grid_id.encode(), t) for t in plan.visit]
        return out
