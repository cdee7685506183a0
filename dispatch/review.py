"""Quick assessment (快速研判): which decisions wait for an analyst before dispatch, and where they wait.

`needs_review` is pure: the first rule of the policy (dispatch/config/review.toml) whose matchers hold holds the
decision for its `within` minutes; a decision with a reason the rule names as enough evidence (a case element)
goes on at once, and T1 never waits (money is moving). Held decisions wait in Redis under their deadline (event
time), by person and by partition of `yujing.decisions`: an analyst's assessment (`yujing.assessments`) takes one,
and the deadline releases it in its person's own order, before their first decision at or after it, or when the
decider's progress on the partition passes it. Each is taken exactly once (ZREM), so a confirm after the timeout
sends nothing twice; what a record released, the same record read again releases again (the same ids).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from dispatch.escalation import Context
from dispatch.redis_keys import slot_group
from schemas.internal import Decision
from schemas.records import FRAUD_TYPES
from schemas.units import MINUTE_MS

REVIEW_FILE = Path(__file__).parent / "config" / "review.toml"


class ReviewPolicyError(ValueError):
    """The review policy is invalid; the message names the rule and the field."""


@dataclass(frozen=True)
class ReviewRule:
    """Decisions of these tiers and fraud types wait `within_ms` for an analyst, unless a reason code says enough."""

    name: str
    tiers: frozenset[str]
    fraud_types: frozenset[str] | None  # None: every type
    enough: frozenset[str]  # reason codes that make a review unnecessary (e.g. a case element touched)
    within_ms: int


@dataclass(frozen=True)
class ReviewPolicy:
    """The rules, tried top-down."""

    version: str
    rules: tuple[ReviewRule, ...]


def _rule(i: int, doc: dict[str, Any]) -> ReviewRule:
    name = str(doc.get("name") or f"rule {i + 1}")
    unknown = set(doc) - {"name", "tier", "fraud_type", "unless_reason", "within"}
    if unknown:
        raise ReviewPolicyError(f"rule {name!r}: unknown keys {sorted(unknown)}")
    tiers = frozenset([doc["tier"]] if isinstance(doc.get("tier"), str) else doc.get("tier", []))
    if not tiers or not tiers <= {"T2", "T3"}:
        raise ReviewPolicyError(f"rule {name!r}: tier must name T2 and/or T3 (a T1 never waits: money is moving)")
    types = doc.get("fraud_type")
    fraud_types = frozenset([types] if isinstance(types, str) else types) if types is not None else None
    if fraud_types is not None and not fraud_types <= set(FRAUD_TYPES):
        raise ReviewPolicyError(f"rule {name!r}: unknown fraud type in {sorted(fraud_types)}")
    within = doc.get("within")
    if not isinstance(within, int) or within <= 0:
        raise ReviewPolicyError(f"rule {name!r}: within must be a whole number of minutes > 0")
    return ReviewRule(name, tiers, fraud_types, frozenset(doc.get("unless_reason", [])), within * MINUTE_MS)


def parse_review_policy(text: str) -> ReviewPolicy:
    """Parse and validate a review policy (TOML)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ReviewPolicyError(f"not valid TOML: {exc}") from None
    return ReviewPolicy(str(doc.get("version", "unversioned")),
                        tuple(_rule(i, r) for i, r in enumerate(doc.get("rule", []))))


def load_review_policy(path: Path = REVIEW_FILE) -> ReviewPolicy:
    """The review policy from its file (default: dispatch/config/review.toml)."""
    return parse_review_policy(path.read_text())


def needs_review(policy: ReviewPolicy, decision: Decision) -> ReviewRule | None:
    """The rule that holds this decision for an analyst, or None (it is dispatched at once)."""
    if not decision.rose or decision.tier == "T1":
        return None
    codes = {r.code for r in decision.reasons}
    for rule in policy.rules:
        if decision.tier in rule.tiers and (rule.fraud_types is None or decision.fraud_type in rule.fraud_types):
            return None if codes & rule.enough else rule
    return None


class Held(msgspec.Struct):
    """A decision waiting for an analyst: what dispatching it needs, the rule that holds it, its deadline (event
    time), when it was held (wall clock: the analyst's time to assess is measured from it), and the partition of
    `yujing.decisions` it came on (whose progress releases it)."""

    context: Context
    rule: str
    deadline: int
    held_wall_ms: int
    partition: int | None = None


# Take the held decisions of one index (a person's, a partition's) whose deadline is at most ARGV[1] off the queue,
# and remember them under the record that released them: that record read again gets the same ones back.
# KEYS: the index, pending, since, the releasing record's set. ARGV: the bound, how long the set is kept (s).
RELEASE_LUA = """
local wids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, wid in ipairs(wids) do
  redis.call('ZREM', KEYS[1], wid)
  if redis.call('ZREM', KEYS[2], wid) == 1 then
    redis.call('ZREM', KEYS[3], wid)
    redis.call('SADD', KEYS[4], wid)
  end
end
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], ARGV[2]) end
return redis.call('SMEMBERS', KEYS[4])
"""


def review_prefix(redis_prefix: str) -> str:
    """The review queue's key prefix: one slot, as a held record is written with its places in the queue (one
    transaction) and the records are read together (MGET)."""
    return slot_group(redis_prefix, "review")


class ReviewStore:
    """Held decisions in Redis (an asyncio client, handed in), by deadline, person and partition; taken exactly once."""

    def __init__(self, client: Any, prefix: str, keep_s: int = 8 * 86_400) -> None:
        self._r = client
        self._p = review_prefix(prefix)
        self._keep = keep_s
        self._release = client.register_script(RELEASE_LUA)

    async def hold(self, held: Held) -> None:
        """Wait for an analyst until the deadline (event time)."""
        wid = held.context.decision.decision_id
        person = f"{self._p}person:{held.context.decision.person}"
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(f"{self._p}held:{wid}", msgspec.json.encode(held), ex=self._keep)
            pipe.zadd(f"{self._p}pending", {wid: held.deadline}, nx=True)
            pipe.zadd(f"{self._p}since", {wid: held.held_wall_ms}, nx=True)
            pipe.zadd(person, {wid: held.deadline}, nx=True)
            pipe.expire(person, self._keep)
            if held.partition is not None:
                pipe.zadd(f"{self._p}partition:{held.partition}", {wid: held.deadline}, nx=True)
            await pipe.execute()

    async def release_person(self, person: str, upto: int, by: str) -> list[Held]:
        """Take the person's held decisions with a deadline at most `upto` (their decision at `upto` comes next),
        for the record `by`: in deadline order, also those it took before (read again after a crash)."""
        return await self._released(f"person:{person}", upto, by)

    async def release_partition(self, partition: int, upto: int, by: str) -> list[Held]:
        """Take the partition's held decisions with a deadline at most `upto` (its decisions below `upto` are all
        dispatched), for the record `by`, as `release_person`."""
        return await self._released(f"partition:{partition}", upto, by)

    async def _released(self, index: str, upto: int, by: str) -> list[Held]:
        wids = await self._release(keys=[f"{self._p}{index}", f"{self._p}pending", f"{self._p}since",
                                         f"{self._p}taken:{by}"], args=[upto, self._keep])
        if not wids:
            return []
        raws = await self._r.mget([f"{self._p}held:{w.decode() if isinstance(w, bytes) else w}" for w in wids])
        held = [msgspec.json.decode(raw, type=Held) for raw in raws if raw]  # none: the person was erased since
        return sorted(held, key=lambda h: (h.deadline, h.context.decision.ts, h.context.decision.decision_id))

    async def take(self, decision_id: str) -> Held | None:
        """Take a held decision off the queue: its record for the one caller that did, None for everyone else."""
        if not await self._r.zrem(f"{self._p}pending", decision_id):
            return None
        await self._r.zrem(f"{self._p}since", decision_id)
        return await self._record(decision_id)  # its places in the person's and partition's index go when passed

    async def held(self, decision_id: str) -> Held | None:
        """The decision if it still waits for an analyst, else None."""
        if await self._r.zscore(f"{self._p}pending", decision_id) is None:
            return None
        return await self._record(decision_id)

    async def _record(self, decision_id: str) -> Held | None:
        raw = await self._r.get(f"{self._p}held:{decision_id}")
        return msgspec.json.decode(raw, type=Held) if raw else None

    async def waiting(self, limit: int = 500) -> list[Held]:
        """The held decisions, earliest deadline first."""
        wids = await self._r.zrange(f"{self._p}pending", 0, limit - 1)
        raws = await self._r.mget([f"{self._p}held:{w.decode() if isinstance(w, bytes) else w}"
                                   for w in wids]) if wids else []
        return [msgspec.json.decode(raw, type=Held) for raw in raws if raw]

    async def depth(self) -> tuple[int, int | None]:
        """How many decisions wait, and since when the longest-waiting one has (wall clock ms; None: none waits)."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zcard(f"{self._p}pending")
            pipe.zrange(f"{self._p}since", 0, 0, withscores=True)
            count, oldest = await pipe.execute()
        return int(count), int(oldest[0][1]) if oldest else None

    async def forget(self, subject_id: str) -> int:
        """A person erased: their held decisions leave the queue (nothing is dispatched for them); how many."""
        theirs = [h for h in await self.waiting(limit=100_000) if h.context.decision.subject_id == subject_id]
        if not theirs:
            return 0
        async with self._r.pipeline(transaction=True) as pipe:  # one round trip, however many they are
            for h in theirs:
                wid = h.context.decision.decision_id
                pipe.zrem(f"{self._p}pending", wid)
                pipe.zrem(f"{self._p}since", wid)
                pipe.delete(f"{self._p}held:{wid}")
                pipe.zrem(f"{self._p}person:{h.context.decision.person}", wid)
                if h.partition is not None:
                    pipe.zrem(f"{self._p}partition:{h.partition}", wid)
            await pipe.execute()
        return len(theirs)
