"""Every store on Redis Cluster (three masters, three replicas): its scripts, transactions and MGETs touch keys of
one hash slot, so they behave as on one Redis; a per-person key lands on any shard. Marked `cluster`: run on a Redis
Cluster (`redis+cluster://…`, scripts/test.sh with YUJING_WITH_CLUSTER=1), failed elsewhere; each test writes
under its own prefix and deletes what it wrote."""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Awaitable, Callable, TypeVar

import msgspec
import pytest
from aiokafka import TopicPartition
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from deploy.config import Settings, load_settings
from deploy.consumers import RedisLoss
from deploy.redis_client import connect, is_cluster
from deploy.stack import redis_answers, shown_url
from dispatch.cooldown import Cooldown
from dispatch.erased import ErasedSubjects
from dispatch.escalation import EscalationStore, breaches_key, clock_key, escalation_prefix
from dispatch.review import Held, ReviewStore
from dispatch.routing import load_routes
from dispatch.sms import Ledger, Receipt, adapter_prefix, done_key, forget_waiting, waiting_keys
from dispatch.stage import Dispatcher
from dispatch.task_queue import TaskQueues, feed_prefix
from dispatch.tasks import Scope
from dispatch.throttle import RefusalThrottle
from ops.access import ConsoleTokens
from ops.board import OpsBoard
from ops.console import console_state
from schemas.internal import Decision, DecisionReason, SmsSent
from schemas.records import BankReply, FraudWarning, PaymentInterception, PhoneTask, Reason, SmsTask, Subject, encode
from streams.identity import identity_changes
from tests.integration.test_dispatch_stores import T, _context, _forget

pytestmark = pytest.mark.cluster
R = TypeVar("R")
WANG = Subject(subject_id="S1", phones=["+8613800000001"], accounts=["A1"], birth_year=1950, grid_id="G7",
               station_id="ST001", name_masked="王*", ts=T)


@pytest.fixture(scope="module")
def cluster() -> Settings:
    """The settings of a Redis Cluster that answers (failed when REDIS_URL names none, or it is silent)."""
    settings = load_settings()
    if not is_cluster(settings.redis_url):
        pytest.fail(f"REDIS_URL ({shown_url(settings.redis_url) or 'unset'}) names no Redis Cluster: start one with "
                    "`yujing stack up --brokers 3 --redis-cluster` or set REDIS_URL=redis+cluster://host:port")
    if not redis_answers(settings.redis_url, **settings.redis_options()):
        pytest.fail(f"no Redis Cluster answers at {shown_url(settings.redis_url)}")
    return settings


def on_cluster(settings: Settings, body: Callable[[RedisCluster, str], Awaitable[R]]) -> R:
    """Run `body(client, prefix)` with a cluster client and a prefix of its own; what it wrote is deleted after."""
    async def run() -> R:
        client = connect(settings.redis_url, **settings.redis_options())
        assert isinstance(client, RedisCluster)
        prefix = f"t-{uuid.uuid4().hex[:12]}.yujing:"
        try:
            return await body(client, prefix)
        finally:
            await _forget(client, prefix)
            await client.aclose()
    return asyncio.run(run())


def decision(wid: str, tier: str, ts: int, subject: str = "S1") -> Decision:
    return Decision(decision_id=wid, person=subject, subject_id=subject, tier=tier, rose=True,  # type: ignore[arg-type]
                    fraud_type="romance", type_probability=0.5, score=0.3,
                    reasons=[DecisionReason(code="X", detail="y")], evidence=["e"], ts=ts, episode_ts=ts,
                    model_version="m", policy_version="p")


def sms_task(message_id: str, to: str) -> SmsTask:
    return SmsTask(warning_id=f"w-{message_id}", tier="T3", fraud_type="romance", ts=T, message_id=message_id, to=to,
                   text="【反诈中心】", not_before_ts=T + 10**9, expires_ts=T + 2 * 10**9)


def phone_task(task_id: str, subject: str, phone: str) -> PhoneTask:
    return PhoneTask(warning_id=f"w-{task_id}", tier="T2", fraud_type="romance", ts=T, task_id=task_id,
                     subject_id=subject, phone=phone, station_id="ST001", script="call", respond_by_ts=T + 1)


def test_the_cooldown_passes_one_warning_per_person_and_people_spread_over_the_shards(cluster: Settings) -> None:
    async def body(client: RedisCluster, prefix: str) -> tuple[list[bool], int, bool]:
        cooldown = Cooldown(client, prefix, cooldown_ms=3_600_000)
        # two workers race for the same person with different warnings: one passes
        raced = await asyncio.gather(*(cooldown.acquire("P1", "T3", T, f"w{i}") for i in range(10)))
        people = [f"P{i}" for i in range(30)]
        await asyncio.gather(*(cooldown.acquire(p, "T3", T, f"w-{p}") for p in people))
        shards = {client.nodes_manager.get_node_from_slot(key_slot(f"{prefix}cooldown:{p}".encode())).name
                  for p in people}
        await cooldown.forget("P1")
        return list(raced), len(shards), await cooldown.acquire("P1", "T3", T + 1, "w-after")

    raced, shards, after = on_cluster(cluster, body)
    assert sorted(raced) == [False] * 9 + [True] and shards == 3 and after  # forgotten: the next one passes


def test_a_fresh_client_takes_commands_sent_together_before_it_knows_the_slots(cluster: Settings) -> None:
    # redis-py's asyncio cluster client routes before it reads the slots; without `connect`'s guard about one fresh
    # client in three failed here (MOVED, then a connection closed under a command opening it)
    async def body(client: RedisCluster, prefix: str) -> list[int]:
        counts = []
        for attempt in range(20):
            fresh = connect(cluster.redis_url, **cluster.redis_options())
            try:
                keys = [f"{prefix}{{first}}:{attempt}:{i}" for i in range(10)]
                await asyncio.gather(*(fresh.incr(key) for key in keys))
                counts.append(sum(int(value) for value in await client.mget(keys)))
            finally:
                await fresh.aclose()
        return counts

    assert on_cluster(cluster, body) == [10] * 20


def test_escalation_ticks_once_claims_a_breach_once_and_forgets_a_person(cluster: Settings) -> None:
    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        store = EscalationStore(client, prefix, keep_s=600)
        await store.schedule(_context("w1"), {0: T + 10, 1: T + 20})
        await store.schedule(_context("w2"), {0: T + 10})
        seen: dict[str, Any] = {"ticks": [await store.tick(T + 15, "d1"), await store.tick(T + 5, "d2")]}
        claims = await asyncio.gather(*(store.breach("w1", 0, f"d{i}") for i in range(10)))
        seen["claims"] = [ctx for taken, ctx in claims if taken]
        seen["resolved"] = [await store.resolve("w1", 1, "o1"), await store.resolve("w1", 1, "o2")]
        seen["breaches"] = int(await client.get(breaches_key(prefix)))
        seen["clock"] = int(await client.get(clock_key(prefix)))
        seen["forgotten"] = await store.forget("S1")  # scans every primary: the contexts are all on one
        seen["left"] = [await store.pending_steps("w2", 1, "o1"), await store.context("w2"),
                        [k async for k in client.scan_iter(f"{escalation_prefix(prefix)}*")]]
        return seen

    seen = on_cluster(cluster, body)
    assert seen["ticks"] == [(T + 15, [("w1", 0), ("w2", 0)])] * 2  # the clock moves forward only
    assert seen["claims"] == [_context("w1")] and seen["resolved"] == [True, False] and seen["breaches"] == 1
    assert seen["clock"] == T + 15 and seen["forgotten"] == 2
    assert seen["left"][:2] == [[], None] and [k for k in seen["left"][2] if b":ctx:" in k] == []


def test_a_held_review_decision_is_released_taken_once_read_in_one_mget_and_forgotten(cluster: Settings) -> None:
    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        store = ReviewStore(client, prefix)
        for wid, deadline, held_at in (("w-late", T + 60, 5_000), ("w-early", T + 30, 9_000), ("w-3", T + 90, 7_000)):
            await store.hold(Held(_context(wid), "rule", deadline, held_at, 2))
        seen: dict[str, Any] = {"order": [h.context.decision.decision_id for h in await store.waiting()],
                                "due": [h.context.decision.decision_id
                                        for h in await store.release_partition(2, T + 30, by="p")],
                                "depth": await store.depth()}
        taken = await asyncio.gather(*(store.take("w-late") for _ in range(10)))  # analysts race
        seen["taken"] = [h.context.decision.decision_id for h in taken if h is not None]
        seen["held"] = [await store.held("w-late"), (await store.held("w-3")) is not None]
        seen["forgotten"], seen["after"] = await store.forget("S1"), await store.depth()
        return seen

    seen = on_cluster(cluster, body)
    assert seen["order"] == ["w-early", "w-late", "w-3"] and seen["due"] == ["w-early"] and seen["depth"] == (2, 5_000)
    assert seen["taken"] == ["w-late"] and seen["held"] == [None, True]
    assert seen["forgotten"] == 1 and seen["after"] == (0, None)


def test_the_sms_ledger_claims_takes_and_settles_each_message_once(cluster: Settings) -> None:
    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        ledger = Ledger(client, prefix)
        seen: dict[str, Any] = {"claims": [await ledger.claim("m1"), await ledger.claim("m1"),
                                           await ledger.claim("m1", again=True)]}
        await ledger.set_mark("m1", "sending")
        seen["claim_sending"] = await ledger.claim("m1", again=True)  # the provider may have it: never again
        seen["released"] = [await ledger.release("m1"), await ledger.release("m1")]
        for mid, ref in (("m1", "ref-1"), ("m2", "")):
            await ledger.claim(mid)
            await ledger.await_receipt(SmsSent(message_id=mid, warning_id="w", to="+8613800000001", kind="warning",
                                               state="accepted", at=1_000, ref=ref), first_look_ms=10)
        seen["marks"] = [await ledger.mark("m1"), await ledger.mark("m2")]
        seen["due"] = sorted(s.message_id for s in await ledger.due(2_000, every_ms=60_000))
        seen["waiting"] = await ledger.waiting_count()
        seen["by_ref"] = await ledger.message_of(Receipt(True, "DELIVRD", ref="ref-1"))
        taken = await asyncio.gather(*(ledger.take("m1", 3_000) for _ in range(10)))  # receipts of two replicas
        seen["taken"] = [t for t in taken if t is not None]
        await ledger.give_back("m1", 1_000)
        seen["stale"] = [await ledger.give_back_stale(10_000), await ledger.take("m1", 3_000) is not None]
        await ledger.finish("m1", "delivered")
        seen["settled"] = [await ledger.mark("m1"), await ledger.waiting_count(), await ledger.take("m1", 4_000)]
        await ledger.keep_unmatched(Receipt(False, "UNDELIV", message_id="m9"))
        seen["unmatched"] = await ledger.unmatched_for(SmsSent(message_id="m9", warning_id="w", to="+8613800000009",
                                                               kind="warning", state="accepted", at=1_000))
        parked, reminders = waiting_keys(prefix)
        await client.zadd(parked, {encode(sms_task("m3", "+8613800000001")): T})
        await client.zadd(reminders, {encode(sms_task("m4", "+8613800000002")): T})
        seen["erased"] = await forget_waiting(client, prefix, {"+8613800000001"})
        seen["after"] = [await ledger.mark("m2"), await ledger.mark("m3"), await client.zcard(parked),
                         await client.zcard(reminders), await ledger.waiting_count()]
        return seen

    seen = on_cluster(cluster, body)
    assert seen["claims"] == [True, False, True] and seen["claim_sending"] is False
    assert seen["released"] == [True, False]  # throttled: free to go later, once
    assert seen["marks"] == ["accepted", "accepted"] and seen["due"] == ["m1", "m2"] and seen["waiting"] == 2
    assert seen["by_ref"] == "m1"
    assert len(seen["taken"]) == 1 and seen["taken"][0]["ref"] == "ref-1"  # one replica settles it
    assert seen["stale"] == [0, True]  # given back already: nothing stale; taken again
    assert seen["settled"] == ["delivered", 1, None]
    assert seen["unmatched"] == Receipt(False, "UNDELIV", message_id="m9")
    # the parked message and the one waiting for its receipt to the erased line go, each marked erased
    assert seen["erased"] == 2 and seen["after"] == ["erased", "erased", 0, 1, 0]


def test_a_task_is_queued_once_claimed_once_reported_once_and_erased(cluster: Settings) -> None:
    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        queues = TaskQueues(client, feed_prefix(prefix), claim_timeout_ms=600_000)
        seen: dict[str, Any] = {"added": [await queues.add("phone:ST001", "t1", encode(phone_task("t1", "S1", "+1"))),
                                          await queues.add("phone:ST001", "t1", encode(phone_task("t1", "S1", "+1"))),
                                          await queues.add("phone:ST002", "t2", encode(phone_task("t2", "S2", "+2")))]}
        claims = await asyncio.gather(*(queues.claim("phone:ST001", "t1", f"desk-{i}") for i in range(6)))
        seen["claims"] = sorted(claims)
        holder = f"desk-{claims.index('ok')}"
        seen["listed"] = [(x.task["task_id"], x.mine, x.claims) for x in await queues.list("phone:ST001", holder)]
        other = "desk-x" if holder != "desk-x" else "desk-y"
        seen["reports"] = [(await queues.report("phone:ST001", "t1", other, b"{}"))[0],
                           await queues.report("phone:ST001", "t1", holder, b'{"o":1}'),
                           await queues.report("phone:ST001", "t1", holder, b'{"o":2}')]
        await queues.sent("t1")
        seen["after"] = [await queues.claim("phone:ST001", "t1", holder), await queues.release_abandoned("phone:ST001")]
        seen["depths"] = await queues.depths()  # every queue, found by a scan over the primaries
        await queues.mark_finished({"t5"})
        seen["finished"] = await queues.add("phone:ST001", "t5", encode(phone_task("t5", "S5", "+5")))
        seen["erased"] = [await queues.forget("S2"), await queues.locate("t2"),
                          await client.hget(f"{feed_prefix(prefix)}t:t2", "state"), await queues.depths()]
        token = await queues.issue_token(Scope("w1", "station", "ST001"), 60, T)
        seen["tokens"] = [await queues.scope_of(token, T + 1), await queues.revoke_tokens("w1"),
                          await queues.scope_of(token, T + 1)]
        seen["first_use"] = [await queues.first_use("w1", "req-1", 60), await queues.first_use("w1", "req-1", 60)]
        return seen

    seen = on_cluster(cluster, body)
    assert seen["added"] == [True, False, True]
    assert seen["claims"] == ["ok"] + ["taken"] * 5 and seen["listed"] == [("t1", True, 1)]
    assert seen["reports"] == ["not_claimed", ("ok", b'{"o":1}'), ("resend", b'{"o":1}')]
    assert seen["after"] == ["done", 0]
    assert seen["depths"] == {"phone:ST001": (0, None), "phone:ST002": (1, T)}  # t1 left its queue when reported
    assert seen["finished"] is False  # its report is on Kafka: not queued again
    assert seen["erased"] == [1, "phone:ST002", b"erased", {"phone:ST001": (0, None), "phone:ST002": (0, None)}]
    assert seen["tokens"] == [Scope("w1", "station", "ST001"), 1, None] and seen["first_use"] == [True, False]


def test_the_board_remembers_counts_settles_forgets_and_the_console_reads_it(cluster: Settings) -> None:
    warning = FraudWarning(warning_id="w1", subject_id="S1", tier="T1", fraud_type="romance", score=0.9,
                           reasons=[Reason(code="X", detail="y")], evidence=[], channels=["phone"], ts=T,
                           respond_by_ts=T + 1, model_version="m", policy_version="p")
    stop = PaymentInterception(transfer_id="TR", payer_account="A", payee_account="B", amount_fen=880_000,
                               reason="r", ts=T, request_id="sp-1")

    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        board = OpsBoard(client, prefix)
        await board.record_warning(warning, None)
        await board.record_warning(warning, None)  # redelivered
        await board.record_warning(msgspec.structs.replace(warning, warning_id="w2", subject_id="S2", tier="T2"), None)
        await board.record_interception("interception.payment", stop)
        reply = BankReply(request_id="sp-1", transfer_id="TR", bank="ICBC", reply="held", ts=T + 1, held_fen=880_000)
        seen: dict[str, Any] = {"settled": [await board.settle_stop_payment(reply),
                                            await board.settle_stop_payment(reply)]}
        await EscalationStore(client, prefix).tick(T + 99, "d1")
        await client.incr(breaches_key(prefix))
        state = await console_state(board, TaskQueues(client, feed_prefix(prefix), 0), client, prefix)
        seen["state"] = {k: state[k] for k in ("clock", "tiers", "sla_breaches", "queues")}
        seen["shown"] = [[w["warning_id"] for w in state["warnings"]], state["interceptions"][0]["reply"]]
        seen["forgotten"] = [await board.forget("S1"), [w["warning_id"] for w in await board.recent("warnings", 9)]]
        return seen

    seen = on_cluster(cluster, body)
    assert seen["settled"] == [(2, ""), (1, "held")]
    assert seen["state"] == {"clock": T + 99, "tiers": {"T1": 1, "T2": 1}, "sla_breaches": 1, "queues": []}
    assert seen["shown"] == [["w2", "w1"], "held"] and seen["forgotten"] == [1, ["w2"]]


def test_console_tokens_and_refusal_throttles(cluster: Settings) -> None:
    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        tokens = ConsoleTokens(client, prefix)
        old = await tokens.issue("ops-1", "viewer", 60, T)
        new = await tokens.issue("ops-2", "analyst", 60, T + 61_000)  # the first has expired: tidied away
        throttle = RefusalThrottle(client, f"{feed_prefix(prefix)}auth:", limit=3)
        turned = [await throttle.turn_away("10.0.0.9") for _ in range(5)]
        return {"grants": [await tokens.grant_of(old), (await tokens.grant_of(new)).role],  # type: ignore[union-attr]
                "revoked": [await tokens.revoke("ops-2"), await tokens.grant_of(new)], "turned": turned,
                "other": await throttle.blocked("10.0.0.8")}

    seen = on_cluster(cluster, body)
    assert seen["grants"] == [None, "analyst"] and seen["revoked"] == [1, None]
    assert seen["turned"] == [False, False, False, True, True] and seen["other"] is False


def test_an_erasure_reaches_every_store_on_the_cluster(cluster: Settings) -> None:
    """The dispatch stage over the real stores: a T2 warning for Wang (cooldown, escalation steps), his board entry,
    call task, held decision and waiting messages; erased, every store lets him go and none of them fails."""
    async def body(client: RedisCluster, prefix: str) -> dict[str, Any]:
        table, _ = identity_changes(None, WANG)
        board, queues = OpsBoard(client, prefix), TaskQueues(client, feed_prefix(prefix), 0)
        review, escalation = ReviewStore(client, prefix), EscalationStore(client, prefix)
        failed: list[str] = []
        erasers = [("console board", lambda subject_id, phones: board.forget(subject_id)),
                   ("feed queues", lambda subject_id, phones: queues.forget(subject_id)),
                   ("SMS adapter", lambda subject_id, phones: forget_waiting(client, prefix, phones))]
        stage = Dispatcher(load_routes(), Cooldown(client, prefix, 3_600_000), table.get, escalation,
                           erasers=erasers, erased=ErasedSubjects(client, prefix, 600), review=review,
                           on_erase_failed=failed.append)
        sent = sorted(o.topic for o in await stage.handle(decision("w-wang", "T2", T)))
        await board.record_warning(FraudWarning(warning_id="w-wang", subject_id="S1", tier="T2", fraud_type="romance",
                                                score=0.5, reasons=[], evidence=[], channels=[], ts=T,
                                                respond_by_ts=T + 1, model_version="m", policy_version="p"), WANG)
        await queues.add("phone:ST001", "t-wang", encode(phone_task("t-wang", "S1", WANG.phones[0])))
        await review.hold(Held(_context("w-held"), "rule", T + 60, 1_000))
        await client.zadd(waiting_keys(prefix)[0], {encode(sms_task("m-wang", WANG.phones[0])): T})
        before = await _kept(client, prefix, board, queues, review, escalation)
        await stage.erase("S1")
        return {"sent": sent, "before": before, "failed": failed,
                "after": await _kept(client, prefix, board, queues, review, escalation),
                "erased": [await stage.erased.holds("S1"), await client.get(done_key(prefix, "m-wang"))]}  # type: ignore[union-attr]

    seen = on_cluster(cluster, body)
    assert seen["sent"] == ["dispatch.phone", "dispatch.visit", "warnings"]
    assert seen["before"] == {"cooldown": True, "steps": True, "board": True, "feed": True, "review": True,
                              "sms": True}
    assert seen["failed"] == [] and not any(seen["after"].values()), seen["after"]
    assert seen["erased"] == [True, b"erased"]


async def _kept(client: RedisCluster, prefix: str, board: OpsBoard, queues: TaskQueues, review: ReviewStore,
                escalation: EscalationStore) -> dict[str, bool]:
    """Where Wang (S1) is still kept."""
    return {"cooldown": bool(await client.exists(f"{prefix}cooldown:S1")),
            "steps": bool(await escalation.pending_steps("w-wang", 3, "o")),
            "board": bool(await board.recent("warnings", 9)),
            "feed": bool(await queues.list("phone:ST001", "nobody")),
            "review": (await review.depth())[0] > 0,
            "sms": bool(await client.zcard(waiting_keys(prefix)[0]))}


def test_the_markers_of_what_redis_holds_are_read_in_one_mget_across_partitions(cluster: Settings) -> None:
    """RedisLoss (the SMS adapter's and the task feed's) reads every assigned partition's marker at once: lost
    ones are rebuilt, then marked; the next look finds them all."""
    class Consumer:
        def __init__(self) -> None:
            self.tps = {TopicPartition("dispatch.visit", p) for p in range(6)}
            self.rewound: list[TopicPartition] = []

        def assignment(self) -> set[TopicPartition]:
            return self.tps

        async def position(self, tp: TopicPartition) -> int:
            return 10

        async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: 10 for tp in tps}

        async def seek_to_beginning(self, tp: TopicPartition) -> None:
            self.rewound.append(tp)

    async def body(client: RedisCluster, prefix: str) -> list[Any]:
        remembered: list[set[str]] = []

        async def remember(ids: set[str]) -> None:
            remembered.append(ids)

        for store in (feed_prefix(prefix), adapter_prefix(prefix)):
            loss = RedisLoss(client, store, cluster, lambda: {"t-done"}, remember, logging.getLogger("test"))
            consumer = Consumer()
            first = await loss.check(consumer)  # type: ignore[arg-type]
            second = await loss.check(consumer)  # type: ignore[arg-type]  # passed the ends: marked
            third = await loss.check(consumer)  # type: ignore[arg-type]
            await client.delete(f"{store}loaded:dispatch.visit:4")  # one partition's marker lost
            fourth = await loss.check(consumer)  # type: ignore[arg-type]
            remembered.append({str(len(consumer.rewound))})
            assert [first, second, third, fourth] == [True, False, False, True]
        return remembered

    assert on_cluster(cluster, body) == [{"t-done"}, {"t-done"}, {"7"}] * 2  # six partitions rebuilt, then the one
