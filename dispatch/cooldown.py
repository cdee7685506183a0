"""Cooldown across channels: one warning per person per cooldown, unless the tier rises (Redis, atomic).

The rule is `cooldown_allows`; it runs inside Redis as one Lua script (the same rule, tested against it), so two
workers can never both pass for the same person. Time is event time: the script compares the warnings' `ts`, so
replaying a day at any speed suppresses exactly what the live run suppressed; the key's TTL (wall clock) only collects garbage. The same warning arriving again (a
redelivery after a crash) passes: its sends carry the same ids, and the SMS gateway and task feeds deduplicate.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from schemas.records import TIER_RANK

REMINDER_TIER = "R"  # the cooldown rank of a reminder campaign's message: below every warning
RANK = {REMINDER_TIER: 0, **{t: r for t, r in TIER_RANK.items() if t is not None}}


class Latest(NamedTuple):
    """The person's latest warning that went out: its rank, event time and id."""

    rank: int
    ts: int
    warning_id: str


def cooldown_allows(latest: Latest | None, rank: int, ts: int, warning_id: str, cooldown_ms: int) -> bool:
    """Whether a warning may go out after `latest`: the same warning again (a redelivery), a higher rank, or the
    cooldown passed in event time. When it may, it becomes the person's latest (a redelivery leaves it as it is)."""
    if latest is None or latest.warning_id == warning_id:
        return True
    return latest.rank < rank or ts - latest.ts >= cooldown_ms


# cooldown_allows, atomically: KEYS[1] holds "rank:ts:warning_id" of the latest warning
COOLDOWN_LUA = """
local cur = redis.call('GET', KEYS[1])
local rank, ts, wid = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local cooldown, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
if cur then
  local crank, cts, cwid = string.match(cur, '^(%d+):(%-?%d+):(.*)$')
  if cwid == wid then return 1 end
  if tonumber(crank) >= rank and ts - tonumber(cts) < cooldown then return 0 end
end
redis.call('SET', KEYS[1], rank .. ':' .. ts .. ':' .. wid, 'EX', ttl)
return 1
"""


class Cooldown:
    """The cooldown stage over an asyncio Redis client (handed in, not global)."""

    def __init__(self, client: Any, prefix: str, cooldown_ms: int, gc_seconds: int = 8 * 86_400) -> None:
        self._r = client
        self._script = client.register_script(COOLDOWN_LUA)
        self._prefix = prefix
        self._cooldown_ms = cooldown_ms
        self._gc = gc_seconds

    async def acquire(self, person: str, tier: str, ts: int, warning_id: str) -> bool:
        """True when this warning may go out; records it as the person's latest."""
        allowed = await self._script(keys=[f"{self._prefix}cooldown:{person}"],
                                     args=[RANK[tier], ts, warning_id, self._cooldown_ms, self._gc])
        return bool(allowed)

    async def forget(self, person: str) -> None:
        """The person was erased: their latest warning goes (a new one for them is not held back by it)."""
        await self._r.delete(f"{self._prefix}cooldown:{person}")
