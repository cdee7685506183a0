"""Erasure on a real broker and Redis: a registry tombstone takes the person out of everything the worker keeps."""
from __future__ import annotations

import asyncio
import json

from deploy.config import Settings
from deploy.redis_client import connect, connect_sync
from deploy.workers import WorkerProcess
from dispatch.escalation import escalation_prefix
from dispatch.sms import done_key, waiting_keys
from dispatch.task_queue import TaskQueues, feed_prefix
from ops.board import board_prefix
from schemas.records import PhoneTask, SmsTask, encode
from streams.kafka_io import consume, produce, read_table
from tests.integration.scenario import ALICE, T, feed_refund_scam, wait_for

SUBJECT = "S_ALICE"  # ALICE's subject id in the scenario's registry
BOB = "+8613800000002"


def _kept(settings: Settings) -> dict[str, bool]:
    """Where the worker still keeps Alice: identity keys, her state, index entries, waiting decisions; in Redis her
    cooldown, her warnings on the console's board, their escalation contexts, her tasks in the feed's queues and
    messages to her line waiting at the SMS adapter."""
    identity = read_table(settings, "identity")
    values = read_table(settings, "values")
    pending = read_table(settings, "pending")
    client = connect_sync(settings.redis_url, **settings.redis_options())
    cooldown = client.exists(f"{settings.redis_prefix}cooldown:{SUBJECT}")
    board = [json.loads(d) for d in client.hvals(f"{board_prefix(settings.redis_prefix)}warnings:doc")]
    contexts = [json.loads(client.get(k) or b"{}")
                for k in client.scan_iter(f"{escalation_prefix(settings.redis_prefix)}ctx:*")]
    queued = [json.loads(fields[b"data"]) for stream in client.scan_iter(f"{feed_prefix(settings.redis_prefix)}q:*")
              for _, fields in client.xrange(stream)]
    waiting = [json.loads(raw) for key in waiting_keys(settings.redis_prefix) for raw in client.zrange(key, 0, -1)]
    return {"identity": any(k in identity for k in (f"phone:{ALICE}".encode(), f"subject:{SUBJECT}".encode(),
                                                    b"account:6222000000000001")),
            "state": SUBJECT.encode() in read_table(settings, "persons"),
            "index": any(k.endswith(f"\x1f{SUBJECT}".encode()) for k in values),
            "heads": any(SUBJECT.encode() in v for k, v in values.items() if b"\x1f" not in k),
            "pending": any(SUBJECT.encode() in v for v in pending.values()),
            "cooldown": bool(cooldown),
            "board": any(d.get("_subject_id") == SUBJECT for d in board),
            "escalation": any(c.get("decision", {}).get("subject_id") == SUBJECT for c in contexts),
            "feed": any(t["subject_id"] == SUBJECT for t in queued),
            "sms": any(m["to"] == ALICE for m in waiting)}


def _queue_for_alice_and_bob(settings: Settings) -> None:
    """What the task feed and the SMS adapter would hold: a call task and a message waiting for quiet hours to
    end, for Alice and for Bob."""
    async def run() -> None:
        client = connect(settings.redis_url, **settings.redis_options())
        queues = TaskQueues(client, feed_prefix(settings.redis_prefix), 0)
        try:
            for who, phone in ((SUBJECT, ALICE), ("S_BOB", BOB)):
                task = PhoneTask(warning_id=f"w-{who}", tier="T1", fraud_type="romance", ts=T, task_id=f"t-{who}",
                                 subject_id=who, phone=phone, station_id="ST1", script="call", respond_by_ts=T + 1)
                assert await queues.add("phone:ST1", task.task_id, encode(task))
                sms = SmsTask(warning_id=f"w-{who}", tier="T1", fraud_type="romance", ts=T, message_id=f"m-{who}",
                              to=phone, text="【反诈中心】", not_before_ts=T + 10**9, expires_ts=T + 2 * 10**9)
                await client.zadd(waiting_keys(settings.redis_prefix)[0], {encode(sms): sms.not_before_ts})
        finally:
            await client.aclose()
    asyncio.run(run())


def test_a_registry_tombstone_erases_the_person_from_everything_the_pipeline_keeps(
        isolated: Settings, worker: WorkerProcess) -> None:
    """Alice's refund scam goes to T1 (her state, index entries, cooldown, board entries and escalation exist), a
    call task and a message for her and for Bob wait in Redis; a null record keyed by her subject id follows:
    every one of hers goes, Bob's stay; a call on her line afterwards is an unregistered line's, not hers."""
    feed_refund_scam(isolated)
    decisions = [json.loads(m.value) for m in consume(isolated, "yujing.decisions", expect=2, timeout=60)]
    assert "T1" in [d["tier"] for d in decisions]
    seen: list[dict[str, bool]] = []

    def kept(want_all: bool) -> bool:
        seen.append(_kept(isolated))
        return all(v for n, v in seen[-1].items() if n != "pending") if want_all else not any(seen[-1].values())

    _queue_for_alice_and_bob(isolated)
    wait_for(lambda: kept(True), 60, "Alice in the identity table, her state, the index and her cooldown")

    produce(isolated, "registry.subjects", [(SUBJECT.encode(), None)])

    try:
        wait_for(lambda: kept(False), 60, "Alice erased everywhere")
    finally:
        print("kept after the tombstone:", seen[-1])
    assert seen[-1] == {"identity": False, "state": False, "index": False, "heads": False, "pending": False,
                        "cooldown": False, "board": False, "escalation": False, "feed": False, "sms": False}
    client = connect_sync(isolated.redis_url, **isolated.redis_options())
    queue = client.xrange(f"{feed_prefix(isolated.redis_prefix)}q:phone:ST1")
    assert [json.loads(fields[b"data"])["subject_id"] for _, fields in queue] == ["S_BOB"]
    assert client.hget(f"{feed_prefix(isolated.redis_prefix)}t:t-{SUBJECT}", "state") == b"erased"  # not queued again
    assert [json.loads(m)["to"] for m in client.zrange(waiting_keys(isolated.redis_prefix)[0], 0, -1)] == [BOB]
    assert client.get(done_key(isolated.redis_prefix, f"m-{SUBJECT}")) == b"erased"  # redelivered: not sent
    # a decision about her still in the topic (taken before the tombstone) warns nobody and plans nothing
    late = {**decisions[-1], "decision_id": "taken-before-the-erasure", "rose": True, "tier": "T1",
            "transfer": {"transfer_id": "TR-late", "payer_account": "6222000000000001",
                         "payee_account": "6217999900001111", "amount_fen": 100_000, "ts": T + 3_600_000}}
    produce(isolated, "yujing.decisions", [(SUBJECT.encode(), json.dumps(late).encode())])
    wait_for(lambda: any(json.loads(m.value)["transfer_id"] == "TR-late"  # dispatched: its stop-payment came
                         for m in consume(isolated, "interception.payment", expect=99, timeout=2, linger=0)),
             60, "the late decision's stop-payment")
    assert not [m for m in consume(isolated, "warnings", expect=99, timeout=3, linger=0)
                if json.loads(m.value)["warning_id"] == late["decision_id"]]
    assert not _kept(isolated)["escalation"] and not _kept(isolated)["board"]
    assert b"phone:+8613800000002" in read_table(isolated, "identity")  # Bob
    assert not consume(isolated, "deadletter", expect=1, timeout=3, linger=0)  # the tombstone was not refused
    produce(isolated, "signals.telecom", [(ALICE.encode(), json.dumps({
        "event_id": "after-erasure", "ts": T + 2 * 3_600_000, "kind": "call", "direction": "in", "subscriber": ALICE,
        "counterpart": "+8613911112222", "duration_s": 30}).encode())])
    wait_for(lambda: ALICE.encode() in read_table(isolated, "persons"), 60, "the line's own state (unregistered)")
    assert SUBJECT.encode() not in read_table(isolated, "persons")
