"""The cooldown on the real Redis: once per person per cooldown, a higher tier overrides, event time decides."""
from __future__ import annotations

import asyncio
import random
import uuid

from deploy.config import Settings
from deploy.redis_client import connect
from dispatch.cooldown import RANK, Cooldown, Latest, cooldown_allows

H = 3_600_000
T = 1_764_547_200_000


def test_cooldown_rules(stack: Settings) -> None:
    async def run() -> list[bool]:
        client = connect(stack.redis_url, **stack.redis_options())
        cd = Cooldown(client, f"test-{uuid.uuid4().hex}:", cooldown_ms=24 * H)
        try:
            return [
                await cd.acquire("P1", "T3", T, "w1"),           # first warning: goes
                await cd.acquire("P1", "T3", T + H, "w2"),       # same tier inside the cooldown: suppressed
                await cd.acquire("P1", "T3", T, "w1"),           # the same warning redelivered: goes (same ids)
                await cd.acquire("P1", "T2", T + 2 * H, "w3"),   # a higher tier overrides
                await cd.acquire("P1", "T3", T + 3 * H, "w4"),   # a lower one after it does not
                await cd.acquire("P1", "T3", T + 27 * H, "w5"),  # after the cooldown, in event time: goes
                await cd.acquire("P2", "T3", T + H, "w6"),       # another person: independent
            ]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [True, False, True, True, False, True, True]


def test_two_workers_racing_for_one_person_let_one_through(stack: Settings) -> None:
    async def run() -> list[bool]:
        clients = [connect(stack.redis_url, **stack.redis_options()) for _ in range(2)]
        prefix = f"test-{uuid.uuid4().hex}:"
        cds = [Cooldown(c, prefix, cooldown_ms=24 * H) for c in clients]
        try:
            return list(await asyncio.gather(*(cds[i % 2].acquire("P", "T3", T, f"w{i}") for i in range(20))))
        finally:
            for c in clients:
                await c.aclose()

    assert sum(asyncio.run(run())) == 1


def test_the_lua_script_and_the_pure_rule_agree(stack: Settings) -> None:
    """Random sequences of warnings for a few people, through the script and through `cooldown_allows`."""
    rng = random.Random(7)
    tiers = list(RANK)
    cases = [(f"P{rng.randrange(4)}", rng.choice(tiers), T + rng.randrange(-2 * H, 60 * H), f"w{rng.randrange(40)}")
             for _ in range(600)]

    async def run() -> list[bool]:
        client = connect(stack.redis_url, **stack.redis_options())
        cd = Cooldown(client, f"test-{uuid.uuid4().hex}:", cooldown_ms=24 * H)
        try:
            return [await cd.acquire(person, tier, ts, wid) for person, tier, ts, wid in cases]
        finally:
            await client.aclose()

    expected, latest = [], {}
    for person, tier, ts, wid in cases:
        allowed = cooldown_allows(latest.get(person), RANK[tier], ts, wid, 24 * H)
        if allowed and (person not in latest or latest[person].warning_id != wid):
            latest[person] = Latest(RANK[tier], ts, wid)
        expected.append(allowed)
    got = asyncio.run(run())
    assert min(sum(got), len(got) - sum(got)) > 25  # both outcomes are exercised
    assert got == expected
