"""The long lab steps tell their progress: each family recorded (in parallel processes too), in any order of
completion, with the recordings still returned in the order asked."""
from __future__ import annotations

from scorers.lab.protocol import Size, recordings


def test_each_family_recorded_is_a_step() -> None:
    steps: list[str] = []
    recs = recordings(("textbook", "office"), Size(150, 1), workers=2, step=steps.append)
    assert list(recs) == ["textbook", "office"]
    assert sorted(steps) == ["recorded office", "recorded textbook"]
