"""Integration fixtures: the stack `scripts/test.sh` started must answer; every test gets its own topics."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from deploy.config import Settings, load_settings
from deploy.replay import Outputs, replay_city
from deploy.stack import kafka_answers, redis_answers
from deploy.workers import WorkerProcess
from scorers.lab.city import CityConfig
from tests.integration.harness import isolated_settings


SLOW = ("test_faults", "test_wheel", "test_secured")  # minutes each: run by .ci/run after the rest
CLUSTER = ("test_cluster", "test_redis_cluster")  # on three Kafka nodes and a Redis Cluster: a stack of their own


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        if "test_faults" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
        if any(name in str(item.fspath) for name in SLOW):
            item.add_marker(pytest.mark.slow)
        if any(name in str(item.fspath) for name in CLUSTER):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def stack() -> Settings:
    """The running stack's settings; integration tests fail (never skip) when it is not answering."""
    settings = load_settings()
    if not kafka_answers(settings):
        pytest.fail(f"no Kafka at {settings.kafka_bootstrap}: run the tests through scripts/test.sh")
    if not redis_answers(settings.redis_url, **settings.redis_options()):
        pytest.fail(f"no Redis at {settings.redis_url}: run the tests through scripts/test.sh")
    return settings


@pytest.fixture
def isolated(stack: Settings, tmp_path: Path, small_model: Path) -> Settings:
    """Settings with unique topics, consumer group and data folder (with the small model) for one test."""
    return isolated_settings(stack, tmp_path / "data", small_model)


@pytest.fixture
def worker(isolated: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A running `yujing worker` on the test's own topics."""
    w = WorkerProcess(isolated, tmp_path / "worker.log").start()
    yield w
    w.stop()


CITY = CityConfig(residents=300, days=2, seed=5, attempts_per_10k_per_day=400)  # 13,445 records, ~16 warnings


@pytest.fixture(scope="session")
def city_reference(stack: Settings, small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    """What one uninterrupted worker sends for CITY: the reference of the scale-out and fault tests."""
    work = tmp_path_factory.mktemp("reference")
    settings = isolated_settings(stack, work / "data", small_model, partitions=4)
    return replay_city(settings, CITY, 1, work / "logs")


STATE = ("persons", "triggers")  # what the pipeline keeps, beside what it sends (`collect_outputs`)
FIGURES: list[str] = []  # what the fault and scale-out tests compared, printed at the end of the run


def record_figures(test: str, reference: Outputs, run: Outputs, settled: frozenset[str] | set[str] = frozenset(),
                   **extra: object) -> None:
    """Note what a test compared: the reference's counts, how many outputs were missing (but for the tasks the
    run's SMS receipts settle) or extra, and what else the test says."""
    outputs = [k for k in reference if k not in STATE]
    missing = sum(len(reference[k] - run[k] - (set(settled) if k == "tasks" else set())) for k in outputs)
    extra_ = sum(len(run[k] - reference[k]) for k in outputs)
    states = ", ".join(f"{k} {len(reference[k] - run[k])}/{len(run[k] - reference[k])}"
                       for k in STATE if k in reference)
    counts = ", ".join(f"{k} {len(v)}" for k, v in reference.items())
    more = "".join(f"; {k} {v}" for k, v in extra.items())
    FIGURES.append(f"{test}: reference {counts}; outputs lost {missing}, extra {extra_}; differing (reference "
                   f"only/run only) {states}; tasks settled by SMS receipts "
                   f"{len(reference['tasks'] - run['tasks'] & set(settled))}{more}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in FIGURES:
        terminalreporter.write_line(f"figures: {line}")
