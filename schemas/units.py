"""Time units in milliseconds, the unit of every event time (`ts`) in the contract, and the operators' time zone."""
from __future__ import annotations

from datetime import timedelta, timezone

LOCAL = timezone(timedelta(hours=8))  # Beijing time: the days and clocks operators read

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
