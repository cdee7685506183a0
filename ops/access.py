"""Who may read the console: tokens with a role and an expiry (only their hashes kept in Redis), and its hosts."""
from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal, Sequence

import msgspec

Role = Literal["viewer", "analyst"]
ROLES: tuple[Role, ...] = ("viewer", "analyst")  # each may do what the ones before it may


class Grant(msgspec.Struct, frozen=True):
    """What a console token grants: who holds it, their role, and until when (epoch ms)."""

    holder: str
    role: Role
    expires_ms: int


def may(grant: Grant | None, need: Role, now_ms: int) -> bool:
    """True when `grant` is unexpired and its role reaches `need` (an analyst may do what a viewer may)."""
    return grant is not None and now_ms < grant.expires_ms and ROLES.index(grant.role) >= ROLES.index(need)


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """True when the request's Host header (port aside) is one the console is served under; a page reached under
    another name (DNS rebinding, a stray proxy) is refused."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal, [::1]:6066
        name, _, port = name[1:].partition("]")
        if port and not (port.startswith(":") and port[1:].isdigit()):
            return False
    elif name.count(":") == 1:
        name, port = name.split(":", 1)
        if not port.isdigit():
            return False
    return bool(name) and name in {a.strip().lower() for a in allowed}


class ConsoleTokens:
    """Console tokens in one Redis hash, by their SHA-256."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._r = client
        self._key = f"{prefix}console:tokens"

    async def issue(self, holder: str, role: Role, ttl_s: int, now_ms: int) -> str:
        """A new token for `holder` with `role`, valid for `ttl_s` seconds."""
        if role not in ROLES or ttl_s <= 0 or not holder:
            raise ValueError("a console token needs a holder, a role of viewer or analyst and a positive lifetime")
        token = secrets.token_urlsafe(32)
        expired = [k for k, v in (await self._r.hgetall(self._key)).items()
                   if (grant := _grant(v)) is None or grant.expires_ms <= now_ms]  # a token issued is rare: tidy up
        if expired:
            await self._r.hdel(self._key, *expired)
        await self._r.hset(self._key, _hash(token), msgspec.json.encode(Grant(holder, role, now_ms + ttl_s * 1000)))
        return token

    async def revoke(self, holder: str) -> int:
        """Revoke every token of `holder`; how many."""
        mine = [k for k, v in (await self._r.hgetall(self._key)).items()
                if (grant := _grant(v)) is None or grant.holder == holder]  # unreadable ones go too
        if mine:
            await self._r.hdel(self._key, *mine)
        return len(mine)

    async def grant_of(self, token: str) -> Grant | None:
        """What a token grants (None for an unknown one; expiry is the caller's to check with `may`)."""
        raw = await self._r.hget(self._key, _hash(token)) if token else None
        return _grant(raw) if raw else None


def _grant(raw: bytes) -> Grant | None:
    try:
        return msgspec.json.decode(raw, type=Grant)
    except msgspec.DecodeError:
        return None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
