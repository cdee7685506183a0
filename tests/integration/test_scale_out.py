"""Scale-out: two workers in one group send what one worker sends on the same city, and the decisions are
those of the in-process replay of the same logic (event-time order makes arrival order irrelevant). The same
with the feed's progress records counted instead of the idle time."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from deploy.city_stream import feed_as_producer
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


def test_with_the_feeds_progress_counted_no_decision_waits_for_the_idle_time(
        stack: Settings, tmp_path: Path, small_model: Path, city_reference: Outputs) -> None:
    """A quiet partition goes idle after ten minutes here: the run drains in two only if the feed's progress
    records move every input partition's mark, the last one (past the city's end) included."""
    settings = dataclasses.replace(isolated_settings(stack, tmp_path / "data", small_model, partitions=4),
                                   idle_after_ms=600_000,
                                   progress_producers=feed_as_producer())
    run = replay_city(settings, CITY, 1, tmp_path / "logs", drain_timeout=120)
    record_figures("the feed's progress instead of the idle time", city_reference, run)
    assert differences(city_reference, run) == {}
