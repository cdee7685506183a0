"""`yujing review list|show|confirm|dismiss|raise`: the analysts' queue of decisions held for quick assessment.

`list` and `show` read the queue in Redis (and `show` the decision's trail from Kafka); `confirm`, `dismiss` and
`raise` write the analyst's word to `yujing.assessments`, which the dispatch stage acts on once (a decision the
clock took first is not sent twice). The record is the audit: who, when, what and why.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from deploy.config import Settings, load_settings
from schemas.catalogue import tr
from schemas.labels import fraud_type_words
from schemas.units import LOCAL

if TYPE_CHECKING:
    from dispatch.review import Held, ReviewStore

T = TypeVar("T")


def add_review_command(sub: Any) -> None:
    """The `review` subcommand and its actions."""
    p = sub.add_parser("review", help="the analysts' queue of decisions held for quick assessment (快速研判)")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="decisions waiting, the earliest deadline first")
    show = actions.add_parser("show", help="one waiting decision with its trail (evidence, features, reasons)")
    show.add_argument("decision_id")
    for action, what in (("confirm", "dispatch it as routed"), ("dismiss", "send nothing: a false alarm"),
                         ("raise", "dispatch it at a higher tier")):
        a = actions.add_parser(action, help=what)
        a.add_argument("decision_id")
        a.add_argument("--analyst", default=getpass.getuser(), help="who assesses (default: the login name)")
        a.add_argument("--reason", default="", required=action == "dismiss", help="why (required to dismiss)")
        if action == "raise":
            a.add_argument("--tier", required=True, choices=["T1", "T2"])
    p.set_defaults(func=review)


def review(args: argparse.Namespace) -> int:
    """Run one `yujing review` action."""
    settings = load_settings()
    if args.action == "list":
        print(_table(asyncio.run(_ask_store(settings, lambda store: store.waiting()))))
        return 0
    if args.action == "show":
        if asyncio.run(_ask_store(settings, lambda store: store.held(args.decision_id))) is None:
            print(tr("no decision {decision_id} is waiting for review", decision_id=args.decision_id))
            return 1
        from ops.explain import gather, render

        print(render(gather(settings, args.decision_id)))
        return 0
    import msgspec

    from ops.review import VerdictError, verdict
    from schemas.topics import ASSESSMENT_TOPIC
    from streams.kafka_io import produce

    try:  # the same checks as the console's review page
        assessment = verdict(args.decision_id, {"action": args.action, "reason": args.reason,
                                                "tier": getattr(args, "tier", None)}, args.analyst,
                             int(time.time() * 1000))
    except VerdictError as exc:
        print(f"yujing review {args.action}: {exc}", file=sys.stderr)
        return 2
    produce(settings, ASSESSMENT_TOPIC, [(assessment.decision_id.encode(), msgspec.json.encode(assessment))])
    print(tr("{action} of {decision_id} sent by {analyst}", action=args.action, decision_id=args.decision_id,
             analyst=args.analyst))
    return 0


async def _ask_store(settings: Settings, ask: Callable[[ReviewStore], Awaitable[T]]) -> T:
    from deploy.redis_client import connect
    from dispatch.review import ReviewStore

    client = connect(settings.redis_url, **settings.redis_options())
    try:
        return await ask(ReviewStore(client, settings.redis_prefix))
    finally:
        await client.aclose()


def _table(waiting: list[Held]) -> str:
    """The queue as lines an analyst reads: deadline, tier, type, station, decision id, first reason."""
    if not waiting:
        return tr("no decision is waiting for review")
    lines = []
    for h in waiting:
        d = h.context.decision
        deadline = datetime.fromtimestamp(h.deadline / 1000, LOCAL).strftime("%m-%d %H:%M")
        reason = d.reasons[0].detail if d.reasons else ""
        lines.append(f"{deadline}  {d.tier}  {fraud_type_words(d.fraud_type):<12} "
                     f"{h.context.who.get('station_id', ''):<10} {d.decision_id}  {reason}")
    return "\n".join(lines)
