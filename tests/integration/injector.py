"""Faults that fire only while the pipeline is provably busy, and the record of what each one hit."""
from __future__ import annotations

import signal
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from deploy.config import Settings
from deploy.replay import Progress
from deploy.stack import kill, redis_nodes, restart, start
from deploy.workers import WorkerProcess
from streams.kafka_io import group_lag, pipeline_groups


@dataclass(frozen=True)
class InFlight:
    """The work under way at one moment."""

    lag: int  # records the group has read or not, but not committed
    waiting: int  # decisions the live workers hold for the watermark
    redis_retries: int  # Redis steps the live workers have retried so far

    @property
    def busy(self) -> bool:
        """Records not yet committed and decisions not yet taken: a fault now interrupts work."""
        return self.lag > 0 and self.waiting > 0

    def __str__(self) -> str:
        return f"lag {self.lag}, waiting {self.waiting}, redis retries {self.redis_retries}"


def _scrape(port: int) -> dict[str, float]:
    """The sum of every sample per metric name on a worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: sum(s.value for s in f.samples if not s.name.endswith("_created"))
            for f in text_string_to_metric_families(text)}


def in_flight(settings: Settings, workers: list[WorkerProcess]) -> InFlight | None:
    """The group's lag and what the live workers hold; None while the broker or a worker does not answer."""
    try:
        lag = group_lag(settings, pipeline_groups(settings))
        metrics = [_scrape(w.settings.web_port) for w in workers if w.running]
    except (KafkaError, OSError):
        return None
    if lag is None or not metrics:
        return None
    return InFlight(lag, int(sum(m.get("yujing_decisions_waiting", 0) for m in metrics)),
                    int(sum(m.get("yujing_redis_retries", 0) for m in metrics)))


def when_busy(settings: Settings, workers: list[WorkerProcess], timeout: float = 120.0) -> InFlight:
    """Wait until the pipeline is busy (records uncommitted, decisions waiting); what was in flight then."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = in_flight(settings, workers) or last
        if last is not None and last.busy:
            return last
        time.sleep(0.1)
    raise AssertionError(f"the pipeline was never busy in {timeout:.0f} s (last seen: {last}): a fault now "
                         "would hit a quiet moment and prove little")


@dataclass
class Faults:
    """Crashes of workers and servers, each fired when the pipeline is busy, noted in the replay's log."""

    settings: Settings
    progress: Progress
    hit: list[tuple[str, InFlight]] = field(default_factory=list)

    def crash_worker(self, workers: list[WorkerProcess], index: int, start_again: bool = True) -> None:
        """SIGKILL worker `index` while the pipeline is busy; start it again under its name."""
        now = when_busy(self.settings, workers)
        workers[index].stop(sig=signal.SIGKILL)
        self._note(f"worker {index} SIGKILLed", now)
        if start_again:
            workers[index].start()
            self.progress.mark(f"worker {index} ready again")

    def crash_redis(self, stack: Settings, workers: list[WorkerProcess], adapter_log: Path,
                    max_down_s: float = 60.0) -> None:
        """SIGKILL Redis while the pipeline is busy, and keep it down until a worker has had to retry a step
        (so the fault provably cut work off), then start it again on its AOF."""
        now = when_busy(self.settings, workers)
        adapter_before = _count(adapter_log, b"Redis did not answer")
        restart(stack, "redis", sig=signal.SIGKILL, until=lambda: self._worker_retried(workers, now),
                max_down_s=max_down_s)
        retried = self._retries_since(workers, now)
        adapter = _count(adapter_log, b"Redis did not answer") - adapter_before
        self._note(f"Redis SIGKILLed ({retried} worker retries, {adapter} adapter waits while down)", now)
        if retried <= 0:
            raise AssertionError(f"no worker step retried while Redis was down {max_down_s:.0f} s")

    def crash_broker(self, stack: Settings, workers: list[WorkerProcess], down_s: float = 3.0,
                     node: str = "kafka") -> None:
        """SIGKILL the broker (or a cluster's `node`) while the pipeline is busy; start it again on its log after
        `down_s`."""
        now = when_busy(self.settings, workers)
        restart(stack, node, down_s=down_s, sig=signal.SIGKILL)
        self._note("broker SIGKILLed" if node == "kafka" else f"broker {node} SIGKILLed", now)

    def fail_over_redis(self, stack: Settings, workers: list[WorkerProcess], master: str,
                        timeout: float = 60.0) -> None:
        """SIGKILL the Redis Cluster master `master` while the pipeline is busy, wait until its replica serves its
        slots, then start it again (it comes back as a replica)."""
        now = when_busy(self.settings, workers)
        ports = {n.name: n.port for n in redis_nodes(stack)}
        witness = next(port for name, port in ports.items() if name != master)
        slot = _first_slot(witness, ports[master], stack)
        t0 = time.monotonic()
        kill(stack, master)
        deadline = time.monotonic() + timeout
        while _serving(witness, slot, stack) in (None, ports[master]) or not all(
                _cluster_ok(port, stack) for name, port in ports.items() if name != master):
            if time.monotonic() > deadline:
                raise AssertionError(f"no replica took over from {master} within {timeout:.0f} s")
            time.sleep(0.2)
        took = time.monotonic() - t0
        retried = self._retries_since(workers, now)
        start(stack, master)
        self._note(f"Redis master {master} SIGKILLed (its replica served its slots after {took:.1f} s; "
                   f"{retried} worker retries meanwhile)", now)

    def _retries_since(self, workers: list[WorkerProcess], before: InFlight) -> int:
        """Redis steps the live workers have retried since `before` (0 while they do not answer)."""
        later = in_flight(self.settings, workers)
        return (later.redis_retries if later else before.redis_retries) - before.redis_retries

    def _worker_retried(self, workers: list[WorkerProcess], before: InFlight) -> bool:
        return self._retries_since(workers, before) > 0

    def _note(self, what: str, now: InFlight) -> None:
        self.hit.append((what, now))
        self.progress.mark(f"{what}; in flight then: {now}")

    def summary(self) -> str:
        """Faults injected and what was in flight at each."""
        return f"{len(self.hit)} faults, in flight at each: " + "; ".join(
            f"[{what}: {now}]" for what, now in self.hit)


def _cluster_ok(port: int, stack: Settings) -> bool:
    """True when the Redis Cluster node at `port` says every slot is served."""
    try:
        return node_says(port, stack, "CLUSTER INFO").get("cluster_state") == "ok"
    except redis.RedisError:
        return False


def node_says(port: int, stack: Settings, command: str) -> dict:
    """What the Redis Cluster node at `port` answers to CLUSTER INFO or CLUSTER NODES (parsed by redis-py)."""
    client = redis.Redis(port=port, socket_timeout=2, **stack.redis_options())
    try:
        return client.execute_command(command)
    finally:
        client.close()


def _first_slot(witness: int, master: int, stack: Settings) -> int:
    """The first slot the master at port `master` serves, as the node at `witness` sees it."""
    return int(node_says(witness, stack, "CLUSTER NODES")[f"127.0.0.1:{master}"]["slots"][0][0])


def _serving(witness: int, slot: int, stack: Settings) -> int | None:
    """The port of the live master serving `slot`, as the node at `witness` sees it (None: none)."""
    try:
        nodes = node_says(witness, stack, "CLUSTER NODES")
    except redis.RedisError:
        return None
    for address, node in nodes.items():
        if "master" in node["flags"] and "fail" not in node["flags"] and any(
                int(r[0]) <= slot <= int(r[-1]) for r in node["slots"]):
            return int(address.rpartition(":")[2].partition("@")[0])
    return None


def _count(path: Path, needle: bytes) -> int:
    return path.read_bytes().count(needle) if path.exists() else 0
