"""Scale-out: one worker and two workers in one group give the same outputs on the same city, and both give
the decisions the in-process replay of the same logic gives (event-time order makes arrival order irrelevant)."""
from __future__ import annotations

from pathlib import Path

from deploy.config import Settings
from deploy.replay import differences, replay_city
from scorers.city import City, CityConfig
from scorers.dataset import Ages, feed_city
from scorers.decide import Decider
from scorers.model import load
from scorers.tiers import TierPolicy
from streams.local import LocalPipeline
from tests.integration.harness import isolated_settings

CITY = CityConfig(residents=300, days=2, seed=5, attempts_per_10k_per_day=400)


def _in_process(model: Path) -> set[tuple[str, str, bool]]:
    pipeline = LocalPipeline()
    pipeline.processor.on_person = Decider(load(model), TierPolicy.load(), Ages(pipeline.processor.lookup))
    feed_city(City(CITY), pipeline, lambda truth: None)
    return {(d.decision_id, d.tier, d.rose) for d in (o.value for o in pipeline.sent["yujing.decisions"])}  # type: ignore[attr-defined]


def test_two_workers_give_what_one_gives_and_what_the_replay_gives(stack: Settings, tmp_path: Path,
                                                                   small_model: Path) -> None:
    runs = {}
    for workers in (1, 2):
        settings = isolated_settings(stack, tmp_path / f"w{workers}",
                                     small_model, partitions=4)
        runs[workers] = replay_city(settings, CITY, workers, tmp_path / f"logs-{workers}")
    one, two = runs[1], runs[2]
    assert len(one["warnings"]) >= 5 and one["stop_payments"] and one["tasks"] and one["sms"]  # a real test
    assert differences(one, two) == {}
    assert one["decisions"] == _in_process(small_model)
