"""The grid-worker and caller task feed over real HTTP, Kafka and Redis: tokens, own grid only, priority order,
claims, abandoned claims returning, reports on `outcomes`, replayed and oversized requests refused; a tombstone
and a malformed task dead-lettered while the feed goes on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import msgspec
import pytest

from deploy.config import Settings
from deploy.redis_client import connect_sync
from deploy.task_feed_service import feed_prefix
from dispatch.task_queue import GROUP, OPEN
from schemas.records import DeadLetter, Outcome, PhoneTask, VisitTask, encode
from streams.kafka_io import consume, produce
from tests.integration.harness import Feed, feed_token

T = 1_764_547_200_000
HOUR = 3_600_000
# Long enough that no claim can lapse while the test runs, however loaded the machine; a grid worker going
# quiet is a claim aged in Redis (its idle time is the claim's clock), not a race against a short timeout.
CLAIM_TIMEOUT_S = 600.0


def _age_claims(settings: Settings, seconds: float) -> int:
    """Make every held claim of the feed look idle for `seconds`, as if its holder had gone quiet; how many."""
    r = connect_sync(settings.redis_url, **settings.redis_options())
    aged = 0
    try:
        for stream in r.scan_iter(match=f"{feed_prefix(settings)}q:*"):
            for p in r.xpending_range(stream, GROUP, min="-", max="+", count=1000):
                if p["consumer"].decode() != OPEN:
                    r.xclaim(stream, GROUP, p["consumer"], 0, [p["message_id"]], idle=int(seconds * 1000),
                             justid=True)
                    aged += 1
    finally:
        r.close()
    return aged


def _visit(task_id: str, grid: str, tier: str, due: int, station: str = "ST001") -> tuple[bytes, bytes]:
    t = VisitTask(warning_id=f"w-{task_id}", tier=tier, fraud_type="fake_customer_service", ts=T,  # type: ignore[arg-type]
                  task_id=task_id, subject_id=f"P-{task_id}", grid_id=grid, station_id=station,
                  name_masked="王*", respond_by_ts=due)
    return grid.encode(), encode(t)


def _phone(task_id: str, station: str) -> tuple[bytes, bytes]:
    t = PhoneTask(warning_id=f"w-{task_id}", tier="T2", fraud_type="romance", ts=T, task_id=task_id,
                  subject_id=f"P-{task_id}", phone="+8613800000009", station_id=station, script="…",
                  respond_by_ts=T + 2 * HOUR)
    return station.encode(), encode(t)


@pytest.fixture
def feed(isolated: Settings, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**os.environ, **isolated.to_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "task-feed", "--clock", "event",
                             "--claim-timeout", str(CLAIM_TIMEOUT_S)], env=env,
                            stdout=open(tmp_path / "feed.log", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{isolated.feed_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "feed.log").read_text()
            time.sleep(0.2)
    yield base, env
    proc.terminate()
    proc.wait(10)


def _wait_tasks(client: Feed, count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while len(tasks := client.tasks()) < count:
        assert time.monotonic() < deadline, tasks
        time.sleep(0.2)
    return tasks


def test_own_grid_priority_claims_reports_and_refusals(isolated: Settings, feed: tuple[str, dict[str, str]],
                                                      tmp_path: Path) -> None:
    base, env = feed
    alice = Feed(base, feed_token(env, "--grid", "G0001", "--worker", "alice"))
    bob = Feed(base, feed_token(env, "--grid", "G0001", "--worker", "bob"))
    carol = Feed(base, feed_token(env, "--grid", "G0002", "--worker", "carol"))
    desk = Feed(base, feed_token(env, "--station", "ST001", "--worker", "desk-1"))
    produce(isolated, "dispatch.visit", [
        _visit("v-t3", "G0001", "T3", T + 48 * HOUR),
        _visit("v-t1-late", "G0001", "T1", T + 2 * HOUR),
        _visit("v-t1", "G0001", "T1", T + HOUR),
        _visit("v-t1", "G0001", "T1", T + HOUR),  # the same task again (a redelivery)
        _visit("v-other", "G0002", "T1", T + HOUR),
        _visit("v-nogrid", "UNASSIGNED", "T2", T + HOUR),
        (b"G0001", None),  # a tombstone and a malformed task: dead-lettered, the feed goes on
        (b"G0001", b'{"task_id": "v-bad"}'),
    ])
    produce(isolated, "dispatch.phone", [_phone("p-1", "ST001"), _phone("p-2", "ST002")])

    # tokens: none, wrong, or revoked: 401
    assert Feed(base, None).call("GET", "/v1/tasks")[0] == 401
    assert Feed(base, "not-a-token").call("GET", "/v1/tasks")[0] == 401
    # own grid only, highest tier then earliest deadline first; the duplicate queued once
    assert [t["task_id"] for t in _wait_tasks(alice, 3)] == ["v-t1", "v-t1-late", "v-t3"]
    assert [t["task_id"] for t in _wait_tasks(carol, 1)] == ["v-other"]
    assert [t["task_id"] for t in _wait_tasks(desk, 2)] == ["v-nogrid", "p-1"]  # a station's calls, visits without a grid
    # another grid's task can be neither claimed nor reported on, and its existence does not leak
    status, body = alice.call("POST", "/v1/tasks/v-other/claim")
    assert status == 404 and "v-other" not in json.dumps(body) and "P-v-other" not in json.dumps(body)
    assert alice.call("POST", "/v1/tasks/v-other/outcome", {"outcome": "visited"})[0] == 404
    assert desk.call("POST", "/v1/tasks/p-2/claim")[0] == 404

    # a claim is exclusive; the holder sees it as theirs, the others no longer see it
    status, body = alice.call("POST", "/v1/tasks/v-t1/claim")
    assert status == 200 and body["task"]["name_masked"] == "王*"
    assert bob.call("POST", "/v1/tasks/v-t1/claim")[0] == 409
    assert [t["task_id"] for t in bob.tasks()] == ["v-t1-late", "v-t3"]
    assert [(t["task_id"], t["mine"]) for t in alice.tasks()][0] == ("v-t1", True)
    # reporting needs the claim, and an outcome that fits a visit
    assert bob.call("POST", "/v1/tasks/v-t1/outcome", {"outcome": "dissuaded"})[0] == 409
    assert alice.call("POST", "/v1/tasks/v-t1/outcome", {"outcome": "call_answered"})[0] == 400

    # alice goes quiet: after the claim timeout the task is back in the queue, and bob takes it
    assert _age_claims(isolated, CLAIM_TIMEOUT_S - 5) == 1
    assert bob.call("POST", "/v1/tasks/v-t1/claim")[0] == 409  # not yet
    assert _age_claims(isolated, CLAIM_TIMEOUT_S + 1) == 1
    assert [t["task_id"] for t in bob.tasks()][0] == "v-t1"
    assert bob.call("POST", "/v1/tasks/v-t1/claim")[0] == 200
    assert alice.call("POST", "/v1/tasks/v-t1/outcome", {"outcome": "visited"})[0] == 409
    status, body = bob.call("POST", "/v1/tasks/v-t1/outcome",
                            {"outcome": "dissuaded", "amount_saved_fen": 5_000_000, "note": "stopped the transfer"})
    assert status == 202, body
    assert bob.call("POST", "/v1/tasks/v-t1/claim")[0] == 409  # finished
    assert "v-t1" not in [t["task_id"] for t in alice.tasks() + bob.tasks()]

    # replayed, stale and oversized requests are refused
    assert bob.call("POST", "/v1/tasks/v-t3/claim")[0] == 200
    replay = {"X-Request-Id": "replay-0001", "X-Request-Time": str(int(time.time() * 1000))}
    assert bob.call("POST", "/v1/tasks/v-t3/outcome", {"outcome": "visited"}, replay)[0] == 202
    assert bob.call("POST", "/v1/tasks/v-t3/outcome", {"outcome": "visited"}, replay)[0] == 409
    stale = {"X-Request-Id": "stale-00001", "X-Request-Time": str(int(time.time() * 1000) - 3_600_000)}
    assert bob.call("POST", "/v1/tasks/v-t1-late/claim", None, stale)[0] == 400
    assert bob.call("POST", "/v1/tasks/v-t1-late/claim", None, {})[0] == 400  # no request id at all
    assert bob.call("POST", "/v1/tasks/v-t1-late/claim")[0] == 200
    status, _ = bob.call("POST", "/v1/tasks/v-t1-late/outcome",
                         b'{"outcome": "visited", "note": "' + b"x" * 20_000 + b'"}')
    assert status == 413
    # a request id is spent only by a valid request: the corrected retry may carry it again
    retry = {"X-Request-Id": "retry-00001", "X-Request-Time": str(int(time.time() * 1000))}
    assert bob.call("POST", "/v1/tasks/v-t1-late/outcome", {"outcome": "call_answered"}, retry)[0] == 400
    assert bob.call("POST", "/v1/tasks/v-t1-late/outcome", {"outcome": "visited"}, retry)[0] == 202
    assert alice.call("GET", "/v1/tasks?limit=abc")[0] == 400
    # a grid id may not name a station's queue; a token expires
    refused = subprocess.run([sys.executable, "-m", "deploy.cli", "feed-token", "--grid", "@ST001", "--worker", "eve"],
                             env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "@" in refused.stderr
    brief = Feed(base, feed_token(env, "--grid", "G0002", "--worker", "brief", "--hours", str(1 / 3600)))
    assert brief.call("GET", "/v1/tasks")[0] == 200
    time.sleep(1.2)
    assert brief.call("GET", "/v1/tasks")[0] == 401
    # a revoked token no longer works
    feed_token(env, "--worker", "bob", "--revoke")
    assert bob.call("GET", "/v1/tasks")[0] == 401

    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:  # no token needed: nothing personal
        metrics = resp.read().decode()
    assert 'yujing_task_queue_depth{channel="visit",unit="G0002"} 1.0' in metrics
    assert 'yujing_task_queue_depth{channel="phone",unit="ST001"} 1.0' in metrics
    assert 'yujing_feed_reports_total{channel="visit",outcome="dissuaded"} 1.0' in metrics
    assert "P-v-" not in metrics and "+86" not in metrics

    reports = [msgspec.json.decode(m.value, type=Outcome)
               for m in consume(isolated, "outcomes", expect=3, timeout=30, linger=2)]
    assert [(r.task_id, r.warning_id, r.channel, r.outcome) for r in reports] == [
        ("v-t1", "w-v-t1", "visit", "dissuaded"), ("v-t3", "w-v-t3", "visit", "visited"),
        ("v-t1-late", "w-v-t1-late", "visit", "visited")]
    assert reports[0].amount_saved_fen == 5_000_000 and reports[0].ts >= T
    log = (tmp_path / "feed.log").read_text()
    assert "claim: bob v-t1 -> ok" in log and "report: bob v-t3 visited -> ok" in log and "list: desk-1" in log
    assert "+86" not in log and "P-v-" not in log  # the audit names workers and tasks, never a person
    # guessing tokens is throttled: 20 refusals a minute from one address, then 429 for its guesses
    guesses = [Feed(base, f"guess-{i}").call("GET", "/v1/tasks")[0] for i in range(25)]
    assert guesses[:15] == [401] * 15 and guesses[-1] == 429  # (three refusals came before: 20 in all)
    assert alice.call("GET", "/v1/tasks")[0] == 200  # a good token is never throttled
    dead = [msgspec.json.decode(m.value, type=DeadLetter)
            for m in consume(isolated, "deadletter", expect=2, timeout=30, linger=1)]
    assert sorted((d.topic, d.reason, d.field) for d in dead) == [
        ("dispatch.visit", "Object missing required field `warning_id`", "warning_id"),
        ("dispatch.visit", "empty message (null value)", None)]


def _forget_everything(settings: Settings) -> int:
    """Delete every key the feed keeps in Redis, as a Redis restarted without its data would have; how many."""
    r = connect_sync(settings.redis_url, **settings.redis_options())
    try:
        keys = list(r.scan_iter(match=f"{feed_prefix(settings)}*"))
        return int(r.delete(*keys)) if keys else 0
    finally:
        r.close()


def test_queues_lost_with_redis_are_rebuilt_from_kafka_every_open_task_once(
        isolated: Settings, feed: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = feed
    grid = Feed(base, feed_token(env, "--grid", "G0003", "--worker", "gina"))
    produce(isolated, "dispatch.visit", [_visit(f"r-{i}", "G0003", "T2", T + (i + 1) * HOUR) for i in range(5)])
    assert [t["task_id"] for t in _wait_tasks(grid, 5)] == [f"r-{i}" for i in range(5)]
    assert grid.call("POST", "/v1/tasks/r-0/claim")[0] == 200
    assert grid.call("POST", "/v1/tasks/r-0/outcome", {"outcome": "visited"})[0] == 202  # finished
    assert grid.call("POST", "/v1/tasks/r-1/claim")[0] == 200  # held, not reported
    consume(isolated, "outcomes", expect=1, timeout=30)

    assert _forget_everything(isolated) > 5  # queues, task records, tokens, the marker
    deadline = time.monotonic() + 60
    while "rebuilding what Redis kept from Kafka" not in (tmp_path / "feed.log").read_text():
        assert time.monotonic() < deadline, (tmp_path / "feed.log").read_text()
        time.sleep(0.5)
    assert grid.call("GET", "/v1/tasks")[0] == 401  # the tokens went with Redis: issued again
    grid = Feed(base, feed_token(env, "--grid", "G0003", "--worker", "gina"))
    tasks = _wait_tasks(grid, 4)
    time.sleep(2)  # nothing more comes
    tasks = grid.tasks()
    assert [t["task_id"] for t in tasks] == ["r-1", "r-2", "r-3", "r-4"]  # once each; the reported one not again
    assert not any(t["mine"] for t in tasks)  # the claim went with Redis: the task is open again
    assert len(consume(isolated, "outcomes", expect=1, timeout=5, linger=1)) == 1
