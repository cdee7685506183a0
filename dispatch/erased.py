"""Who was erased: a mark per subject in Redis, so that dispatch work already under way does not bring them back."""
from __future__ import annotations

from typing import Any


class ErasedSubjects:
    """Erased subjects' marks over an asyncio Redis client (handed in), kept as long as decisions about them may
    still be read (`keep_s`)."""

    def __init__(self, client: Any, prefix: str, keep_s: int) -> None:
        self._r = client
        self._prefix = prefix
        self._keep = keep_s

    async def mark(self, subject_id: str) -> None:
        """The subject was erased."""
        await self._r.set(f"{self._prefix}erased:{subject_id}", 1, ex=self._keep)

    async def holds(self, subject_id: str | None) -> bool:
        """Whether the subject was erased (an unregistered person never was)."""
        return bool(subject_id) and bool(await self._r.exists(f"{self._prefix}erased:{subject_id}"))

    async def clear(self, subject_id: str) -> None:
        """The subject was registered again: what is decided about them from now on goes out."""
        await self._r.delete(f"{self._prefix}erased:{subject_id}")
