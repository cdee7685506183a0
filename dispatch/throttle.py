"""Refused requests counted per client in Redis: past a limit within a window, the client's next wrong guesses
are answered 429 (a good credential is checked first and never throttled)."""
from __future__ import annotations

from typing import Any


class RefusalThrottle:
    """Counts a client's refusals (a wrong token, say) for `window_s`; at `limit` the client is blocked."""

    def __init__(self, client: Any, prefix: str, limit: int = 20, window_s: int = 60) -> None:
        self._r = client
        self._p = prefix
        self.limit = limit
        self.window_s = window_s

    async def blocked(self, who: str) -> bool:
        """True while `who` has been refused `limit` times within the window."""
        return int(await self._r.get(f"{self._p}refused:{who}") or 0) >= self.limit

    async def refused(self, who: str) -> None:
        """Count one refusal of `who`; the window starts at the first."""
        key = f"{self._p}refused:{who}"
        async with self._r.pipeline(transaction=True) as pipe:  # SET NX EX, not EXPIRE NX: that needs Redis 7
            pipe.set(key, 0, ex=self.window_s, nx=True)
            pipe.incr(key)
            await pipe.execute()

    async def turn_away(self, who: str, guessed: bool = True) -> bool:
        """After a refused credential: True when `who` is blocked (answer 429); else the guess, if there was one,
        is counted (answer as refused)."""
        if await self.blocked(who):
            return True
        if guessed:
            await self.refused(who)
        return False
