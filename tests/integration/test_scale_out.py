"""Scale-out: two workers in one group send what one worker sends on the same city, and the decisions are
those of the in-process replay of the same logic (event-time order makes arrival order irrelevant)."""
from __future__ import annotations

from pathlib import Path

from deploy.config import Settings
from deploy.replay import Outputs, differences, replay_city
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.lab.city import City
from scorers.lab.recording import feed_city
from scorers.model import load
from streams.local import LocalPipeline
from tests.integration.conftest import CITY, record_figures
from tests.integration.harness import isolated_settings


def _in_process(model: Path) -> set[tuple[str, str, bool]]:
    pipeline = LocalPipeline()
    pipeline.processor.on_person = Decider(load(model), load(model).tier_policy(), Ages(pipeline.processor.lookup))
    feed_city(City(CITY), pipeline)
    return {(d.decision_id, d.tier, d.rose) for d in (o.value for o in pipeline.sent["yujing.decisions"])}  # type: ignore[attr-defined]


def test_two_workers_send_what_one_sends_and_decide_as_the_replay(stack: Settings, tmp_path: Path,
                                                                   small_model: Path, city_reference: Outputs) -> None:
    one = city_reference
    assert len(one["warnings"]) >= 5 and one["stop_payments"] and one["tasks"] and one["sms"]  # a real test
    two = replay_city(isolated_settings(stack, tmp_path / "data", small_model, partitions=4), CITY, 2,
                      tmp_path / "logs")
    record_figures("two workers against one", one, two)
    assert differences(one, two) == {}
    assert one["decisions"] == _in_process(small_model)
