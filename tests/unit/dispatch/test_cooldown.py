"""The cooldown rule as a pure function (the Lua script in Redis is held to it in tests/integration/test_cooldown.py)."""
from __future__ import annotations

import pytest

from dispatch.cooldown import RANK, Latest, cooldown_allows

H = 3_600_000
T = 1_764_547_200_000
DAY = 24 * H


@pytest.mark.parametrize("latest, tier, ts, wid, allowed", [
    (None, "T3", T, "w1", True),                                   # the first warning goes
    (Latest(RANK["T3"], T, "w1"), "T3", T + H, "w2", False),       # same tier inside the cooldown: held back
    (Latest(RANK["T3"], T, "w1"), "T3", T, "w1", True),            # the same warning redelivered: goes again
    (Latest(RANK["T3"], T, "w1"), "T2", T + H, "w3", True),        # a higher tier overrides
    (Latest(RANK["T2"], T, "w3"), "T3", T + H, "w4", False),       # a lower one after it does not
    (Latest(RANK["T3"], T, "w1"), "T3", T + DAY, "w5", True),      # the cooldown passed, in event time
    (Latest(RANK["T3"], T, "w1"), "T3", T + DAY - 1, "w5", False),
    (Latest(RANK["T3"], T, "w1"), "T3", T - H, "w0", False),       # an earlier warning read later: held back
    (Latest(RANK["T3"], T, "w1"), "R", T + H, "c1", False),        # a reminder never beats a warning
    (Latest(RANK["R"], T, "c1"), "T3", T + H, "w1", True),         # a warning always beats a reminder
    (Latest(RANK["T1"], T, "w9"), "T1", T + H, "w10", False),      # T1 again within the day: held back
])
def test_cooldown_allows(latest: Latest | None, tier: str, ts: int, wid: str, allowed: bool) -> None:
    assert cooldown_allows(latest, RANK[tier], ts, wid, DAY) is allowed
