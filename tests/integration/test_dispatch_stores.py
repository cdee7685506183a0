"""Escalation's store and the console's board on the real Redis: the rules the dispatch stage's unit tests assume of
them (tests/unit/dispatch/test_stage.py keeps the same rules in dicts)."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis

from deploy.config import Settings
from deploy.redis_client import connect
from dispatch.escalation import Context, EscalationStore, breaches_key, escalation_prefix
from dispatch.review import Held, ReviewStore
from dispatch.task_queue import TaskQueues, feed_prefix
from dispatch.tasks import Scope
from ops.access import ConsoleTokens
from ops.board import KEEP, OpsBoard, board_prefix
from schemas.internal import Decision, DecisionReason
from schemas.records import BankReply, DomainInterception, FraudWarning, PaymentInterception, Reason

T = 1_764_547_200_000


def _context(wid: str) -> Context:
    decision = Decision(decision_id=wid, person="S1", subject_id="S1", tier="T2", rose=True, fraud_type="romance",
                        type_probability=0.5, score=0.3, reasons=[DecisionReason(code="X", detail="y")],
                        evidence=["e"], ts=T, episode_ts=T, model_version="m", policy_version="p")
    return Context(decision=decision, route="t2", who={"subject_id": "S1"})


async def _forget(client: aioredis.Redis | aioredis.RedisCluster, prefix: str) -> None:
    """Delete every key a test wrote under its prefix, hash-tagged ones (`{prefix…}:…`) too."""
    keys = [k for pattern in (f"{prefix}*", f"{{{prefix}*") async for k in client.scan_iter(pattern)]
    if keys:
        await client.delete(*keys)


def test_the_clock_moves_forward_only_and_a_breached_step_is_claimed_once_with_its_context(stack: Settings) -> None:
    async def run() -> list[object]:
        client = connect(stack.redis_url, **stack.redis_options())
        prefix = f"test-{uuid.uuid4().hex}:"
        store = EscalationStore(client, prefix, keep_s=600)
        try:
            await store.schedule(_context("w1"), {0: T + 10, 1: T + 20})
            await store.schedule(_context("w2"), {0: T + 10})
            kept_s = await client.ttl(f"{escalation_prefix(prefix)}ctx:w1")
            seen: list[object] = [await store.tick(T, "d1"), await store.tick(T + 15, "d2"),
                                  await store.tick(T + 5, "d3"), await store.pending_steps("w1", 3, "o1"),
                                  await store.breach("w1", 0, "d2"), await store.breach("w1", 0, "d3"),
                                  await store.pending_steps("w1", 3, "o1"), await store.resolve("w1", 1, "o1"),
                                  await store.resolve("w1", 1, "o2"),
                                  # read again after a crash: d2 and o1 get what they took, and nothing new
                                  await store.tick(T + 15, "d2"), await store.breach("w1", 0, "d2"),
                                  await store.pending_steps("w1", 3, "o1"), await store.resolve("w1", 1, "o1")]
            await client.delete(f"{escalation_prefix(prefix)}ctx:w2")  # expired
            seen += [await store.breach("w2", 0, "d4"), await store.tick(T + 30, "d5"),
                     int(await client.get(breaches_key(prefix))), 0 < kept_s <= 600]
            return seen
        finally:
            await _forget(client, prefix)
            await client.aclose()

    assert asyncio.run(run()) == [
        (T, []),                              # nothing due yet
        (T + 15, [("w1", 0), ("w2", 0)]),     # the first deadlines passed
        (T + 15, [("w1", 0), ("w2", 0)]),     # an earlier event does not move the clock back
        [0, 1],
        (True, _context("w1")),               # claimed, with the context it was scheduled with
        (False, None),                        # another record's claim loses
        [1],
        True, False,                          # an outcome answers the second step once
        (T + 15, [("w1", 0), ("w2", 0)]),     # d2 again: the step it claimed comes back to it
        (True, _context("w1")),               # …claimed by it again, not counted again
        [1], True,                            # o1 again: the step it answered is its own still
        (True, None),                         # claimed and counted though its context has expired
        (T + 30, []),                         # nothing left to breach
        2,                                    # two breaches counted
        True,                                 # contexts expire (`keep_s`)
    ]


def test_two_workers_claiming_one_breached_step_take_it_once(stack: Settings) -> None:
    async def run() -> tuple[list[tuple[bool, Context | None]], int]:
        clients = [connect(stack.redis_url, **stack.redis_options()) for _ in range(2)]
        prefix = f"test-{uuid.uuid4().hex}:"
        stores = [EscalationStore(c, prefix) for c in clients]
        try:
            await stores[0].schedule(_context("w1"), {0: T})
            claims = await asyncio.gather(*(stores[i % 2].breach("w1", 0, f"d{i}") for i in range(20)))
            return list(claims), int(await clients[0].get(breaches_key(prefix)))
        finally:
            await _forget(clients[0], prefix)
            for c in clients:
                await c.aclose()

    claims, breaches = asyncio.run(run())
    assert [ctx for taken, ctx in claims if taken] == [_context("w1")] and breaches == 1


def test_the_board_remembers_once_counts_tiers_once_and_keeps_the_newest(stack: Settings) -> None:
    warning = FraudWarning(warning_id="w1", subject_id="S1", tier="T1", fraud_type="romance", score=0.9,
                           reasons=[Reason(code="X", detail="y")], evidence=[], channels=["phone"], ts=T,
                           respond_by_ts=T + 1, model_version="m", policy_version="p")

    async def run() -> tuple[list[str], dict[str, int], list[int], int]:
        client = connect(stack.redis_url, **stack.redis_options())
        prefix = f"test-{uuid.uuid4().hex}:"
        board = OpsBoard(client, prefix)
        try:
            await board.record_warning(warning, None)
            await board.record_warning(warning, None)  # redelivered
            for i in range(KEEP + 5):
                await board.record_interception("interception.domain", DomainInterception(
                    domain=f"d{i}.example.cn", fraud_type="romance", reason="r", source="test", ts=T + i))
            shown = await board.recent("warnings", 10)
            assert all("subject" not in field for w in shown for field in w)  # kept for an erasure, not shown
            warnings = [w["warning_id"] for w in shown]
            kept = [e["ts"] - T for e in await board.recent("interceptions", KEEP + 10)]
            docs = await client.hlen(f"{board_prefix(prefix)}interceptions:doc")
            other = msgspec.structs.replace(warning, warning_id="w2", subject_id="S2")
            await board.record_warning(other, None)
            assert await board.forget("S1") == 1 and await board.forget("S1") == 0  # S1 erased: S2's stays
            assert [w["warning_id"] for w in await board.recent("warnings", 10)] == ["w2"]
            return warnings, await board.tiers(), kept, docs
        finally:
            await _forget(client, prefix)
            await client.aclose()

    warnings, tiers, kept, docs = asyncio.run(run())
    assert warnings == ["w1"] and tiers == {"T1": 2}
    assert kept == list(range(KEEP + 4, 4, -1)) and docs == KEEP  # the 5 oldest left, with their documents


def test_a_banks_answers_settle_a_stop_payment_latest_first_and_only_its_own_request(stack: Settings) -> None:
    request = PaymentInterception(transfer_id="TR", payer_account="A", payee_account="B", amount_fen=880_000,
                                  reason="r", ts=T, request_id="sp-1")

    def answer(reply: str, ts: int, request_id: str = "sp-1") -> BankReply:
        return BankReply(request_id=request_id, transfer_id="TR", bank="ICBC", reply=reply, ts=ts,  # type: ignore[arg-type]
                         held_fen=880_000 if reply == "held" else None)

    async def run() -> tuple[list[tuple[int, str]], dict]:
        client = connect(stack.redis_url, **stack.redis_options())
        prefix = f"test-{uuid.uuid4().hex}:"
        board = OpsBoard(client, prefix)
        try:
            states = [await board.settle_stop_payment(answer("held", T + 1))]  # not on the board yet
            await board.record_interception("interception.payment", request)
            for a in (answer("held", T + 1), answer("held", T + 1), answer("released", T),  # a repeat, an older one
                      answer("held", T + 5, "sp-other"),  # another request's answer for the same transfer
                      answer("released", T + 9)):
                states.append(await board.settle_stop_payment(a))
            return states, (await board.recent("interceptions", 1))[0]
        finally:
            await _forget(client, prefix)
            await client.aclose()

    states, shown = asyncio.run(run())
    assert states == [(0, ""), (2, ""), (1, "held"), (1, "held"), (0, ""), (2, "held")]
    assert (shown["reply"], shown["reply_ts"], shown["bank"], shown["ts"]) == ("released", T + 9, "ICBC", T)
    assert "held_fen" not in shown and shown["amount_fen"] == 880_000  # released: nothing held any more


def test_a_held_decision_is_released_by_its_person_or_its_partition_and_taken_once(stack: Settings) -> None:
    async def run() -> dict[str, Any]:
        client = connect(stack.redis_url, **stack.redis_options())
        prefix = f"test-{uuid.uuid4().hex}:"
        store = ReviewStore(client, prefix)

        def ids(held: list[Held]) -> list[str]:
            return [h.context.decision.decision_id for h in held]
        try:
            seen: dict[str, Any] = {"depths": [await store.depth()]}
            for wid, deadline, held_at, partition in (("w-late", T + 60, 5_000, 3), ("w-early", T + 30, 9_000, 3),
                                                      ("w-next", T + 40, 8_000, 3), ("w-there", T + 20, 7_000, 4)):
                await store.hold(Held(_context(wid), "rule", deadline, held_at, partition))
            seen["depths"].append(await store.depth())
            seen["order"] = ids(await store.waiting())
            seen["partition"] = ids(await store.release_partition(3, T + 30, by="progress:3:30"))
            seen["again"] = ids(await store.release_partition(3, T + 30, by="progress:3:30"))  # read again
            seen["person"] = ids(await store.release_person("S1", T + 40, by="d-7"))  # their next decision at +40
            # an analyst's assessment and the clock race for the same decision: one wins
            taken = await asyncio.gather(store.take("w-late"), store.take("w-late"))
            seen["taken"] = sorted(h is not None for h in taken)
            seen["after"] = ids(await store.release_partition(3, T + 90, by="progress:3:90"))  # nothing left
            seen["depths"].append(await store.depth())
            await store.hold(Held(_context("w-erased"), "rule", T + 99, 1_000, 3))
            seen["forgotten"] = await store.forget("S1")
            seen["erased"] = ids(await store.release_person("S1", T + 99, by="d-8"))
            seen["depths"].append(await store.depth())
            return seen
        finally:
            await _forget(client, prefix)
            await client.aclose()

    seen = asyncio.run(run())
    assert seen["order"] == ["w-there", "w-early", "w-next", "w-late"]
    assert seen["partition"] == seen["again"] == ["w-early"]  # partition 3's only one due; the same when read again
    assert seen["person"] == ["w-there", "w-next"]  # the person's, on any partition, in deadline order
    assert seen["taken"] == [False, True] and seen["after"] == []
    assert seen["forgotten"] == 1 and seen["erased"] == []  # the person erased: their held decision goes too
    # how many wait, and since when the longest-waiting one has (held first, though its deadline is later)
    assert seen["depths"] == [(0, None), (4, 5_000), (0, None), (0, None)]


def test_expired_console_and_feed_tokens_leave_redis_when_the_next_one_is_issued(stack: Settings) -> None:
    async def run() -> tuple[int, int, bool]:
        client = connect(stack.redis_url, **stack.redis_options())
        prefix = f"test-{uuid.uuid4().hex}:"
        console, feed = ConsoleTokens(client, prefix), TaskQueues(client, feed_prefix(prefix), 0)
        try:
            old = await console.issue("ops-1", "viewer", 60, T)
            await feed.issue_token(Scope("w1", "grid", "G1"), 60, T)
            await console.issue("ops-2", "viewer", 60, T + 61_000)  # the first has expired by then
            await feed.issue_token(Scope("w2", "grid", "G1"), 60, T + 61_000)
            kept = await console.grant_of(old) is not None
            return await client.hlen(f"{prefix}console:tokens"), await client.hlen(f"{feed_prefix(prefix)}tokens"), kept
        finally:
            await _forget(client, prefix)
            await client.aclose()

    assert asyncio.run(run()) == (1, 1, False)
