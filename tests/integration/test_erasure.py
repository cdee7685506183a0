"""Erasure on a real broker and Redis: a registry tombstone takes the person out of everything the worker keeps."""
from __future__ import annotations

import json

import redis

from deploy.config import Settings
from deploy.workers import WorkerProcess
from streams.kafka_io import consume, produce, read_table
from tests.integration.scenario import ALICE, T, feed_refund_scam, wait_for

SUBJECT = "S_ALICE"  # ALICE's subject id in the scenario's registry


def _kept(settings: Settings) -> dict[str, bool]:
    """Where the worker still keeps Alice: identity keys, her state, index entries, waiting decisions, her cooldown
    and her warnings on the console's board."""
    identity = read_table(settings, "identity")
    values = read_table(settings, "values")
    pending = read_table(settings, "pending")
    client = redis.Redis.from_url(settings.redis_url)
    cooldown = client.exists(f"{settings.redis_prefix}cooldown:{SUBJECT}")
    board = [json.loads(d) for d in client.hvals(f"{settings.redis_prefix}ops:warnings:doc")]
    return {"identity": any(k in identity for k in (f"phone:{ALICE}".encode(), f"subject:{SUBJECT}".encode(),
                                                    b"account:6222000000000001")),
            "state": SUBJECT.encode() in read_table(settings, "persons"),
            "index": any(k.endswith(f"\x1f{SUBJECT}".encode()) for k in values),
            "heads": any(SUBJECT.encode() in v for k, v in values.items() if b"\x1f" not in k),
            "pending": any(SUBJECT.encode() in v for v in pending.values()),
            "cooldown": bool(cooldown),
            "board": any(d.get("_subject_id") == SUBJECT for d in board)}


def test_a_registry_tombstone_erases_the_person_from_identity_state_index_cooldown_and_board(
        isolated: Settings, worker: WorkerProcess) -> None:
    """Alice's refund scam goes to T1 (her state, index entries, cooldown and board entries exist); a null record
    keyed by her subject id follows: every one of them goes; Bob stays registered; a call on her line afterwards
    is an unregistered line's, not hers."""
    feed_refund_scam(isolated)
    tiers = [json.loads(m.value)["tier"] for m in consume(isolated, "yujing.decisions", expect=2, timeout=60)]
    assert "T1" in tiers
    seen: list[dict[str, bool]] = []

    def kept(want_all: bool) -> bool:
        seen.append(_kept(isolated))
        return all(v for n, v in seen[-1].items() if n != "pending") if want_all else not any(seen[-1].values())

    wait_for(lambda: kept(True), 60, "Alice in the identity table, her state, the index and her cooldown")

    produce(isolated, "registry.subjects", [(SUBJECT.encode(), None)])

    try:
        wait_for(lambda: kept(False), 60, "Alice erased everywhere")
    finally:
        print("kept after the tombstone:", seen[-1])
    assert seen[-1] == {"identity": False, "state": False, "index": False, "heads": False, "pending": False,
                        "cooldown": False, "board": False}
    assert b"phone:+8613800000002" in read_table(isolated, "identity")  # Bob
    assert not consume(isolated, "deadletter", expect=1, timeout=3, linger=0)  # the tombstone was not refused
    produce(isolated, "signals.telecom", [(ALICE.encode(), json.dumps({
        "event_id": "after-erasure", "ts": T + 2 * 3_600_000, "kind": "call", "direction": "in", "subscriber": ALICE,
        "counterpart": "+8613911112222", "duration_s": 30}).encode())])
    wait_for(lambda: ALICE.encode() in read_table(isolated, "persons"), 60, "the line's own state (unregistered)")
    assert SUBJECT.encode() not in read_table(isolated, "persons")
