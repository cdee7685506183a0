"""Ages from the registry's birth years, for the features that depend on age."""
from __future__ import annotations

from typing import Callable

from streams.identity import decode_profile, subject_key


class Ages:
    """Ages from the identity table's profiles, cached (a birth year does not change)."""

    def __init__(self, lookup: Callable[[str], str | None], year: int = 2025) -> None:
        self._lookup = lookup
        self._year = year
        self._cache: dict[str, int | None] = {}

    def __call__(self, subject_id: str | None) -> int | None:
        if subject_id is None:
            return None
        if subject_id not in self._cache:
            profile = decode_profile(self._lookup(subject_key(subject_id)))
            self._cache[subject_id] = self._year - profile.birth_year if profile else None
        return self._cache[subject_id]
