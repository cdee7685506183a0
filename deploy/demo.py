"""`yujing demo`: the main job; a simulated city streamed through the real pipeline, warnings dispatched.

Starts the local stack, creates the topics, starts a worker (which trains the default model on first use), the
local SMS test gateway and the SMS gateway adapter, streams a small simulated city into Kafka, waits until
the pipeline is quiet, and prints what came out of the topics. Every number comes from Kafka, except the last
line, which compares the warnings with the simulator's ground truth.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import msgspec

from deploy import stack
from deploy.config import Settings
from deploy.feed import stream_city
from deploy.kafka_io import end_offsets, read_to_end
from deploy.topics import create_topics
from deploy.workers import WorkerProcess
from schemas.internal import Decision
from schemas.records import Outcome
from scorers.city import City, CityConfig

GATEWAY_PORT = 9110
COUNTED = ("deadletter", "yujing.decisions", "warnings", "dispatch.sms", "dispatch.phone", "dispatch.visit",
           "interception.payment", "interception.account", "interception.domain", "interception.number", "outcomes")


@dataclass
class Services:
    """The processes the demo started, to stop them all at the end (or on Ctrl-C)."""

    worker: WorkerProcess
    others: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for proc in self.others:
            proc.terminate()
        for proc in self.others:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.worker.stop()


def _start(settings: Settings) -> Services:
    logs = settings.data_dir / "logs"
    print("== starting a pipeline worker (the first run trains the default model: about 1.5 min) ==", flush=True)
    worker = WorkerProcess(settings, logs / "worker-0.log").start(ready_timeout=600)
    env = {**os.environ, **settings.to_env()}
    others = [
        subprocess.Popen([sys.executable, "-m", "deploy.cli", "test-gateway", "--port", str(GATEWAY_PORT)], env=env,
                         stdout=open(logs / "test-gateway.log", "ab"), stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "deploy.cli", "sms-gateway", "--clock", "event", "--url",
                          f"http://127.0.0.1:{GATEWAY_PORT}/send"], env=env,
                         stdout=open(logs / "sms-gateway.log", "ab"), stderr=subprocess.STDOUT),
    ]
    return Services(worker, others)


def _counts(settings: Settings, starts: dict[str, dict[int, int]]) -> dict[str, int]:
    ends = {t: end_offsets(settings, t) for t in COUNTED}
    return {t: sum(ends[t].values()) - sum(starts[t].values()) for t in COUNTED}


def lag(settings: Settings) -> int:
    """Messages the worker's consumer group has not committed yet, over every topic it reads."""
    from kafka import KafkaAdminClient, KafkaConsumer

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
        ours = {tp: om.offset for tp, om in committed.items() if tp.topic.startswith(settings.topic_prefix)}
        ends = consumer.end_offsets(list(ours)) if ours else {}
        return sum(max(0, ends[tp] - max(off, 0)) for tp, off in ours.items())
    finally:
        consumer.close()
        admin.close()


def _wait_drained(settings: Settings, starts: dict[str, dict[int, int]], limit_s: float = 900) -> dict[str, int]:
    """Wait until the worker has committed everything it reads and the outputs stopped growing for a while."""
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        counts, behind = _counts(settings, starts), lag(settings)
        print(f"\r  behind {behind:>7}  decisions {counts['yujing.decisions']:>5}  warnings {counts['warnings']:>5}  "
              f"SMS {counts['dispatch.sms']:>5}  receipts {counts['outcomes']:>5}", end="", flush=True)
        if counts != last or behind:
            last, stable_since = counts, time.monotonic()
        elif time.monotonic() - stable_since >= 6:
            break
        time.sleep(1)
    print()
    return last or {}


def _reached_before_loss(settings: Settings, city: City, after: dict[int, int]) -> tuple[int, int]:
    """Victims with a loss who had a warning before it (decisions from Kafka, truth from the simulator)."""
    first: dict[str, int] = {}
    for msg in read_to_end(settings, settings.topic("yujing.decisions")):
        if msg.offset < after.get(msg.partition, 0):
            continue
        d = msgspec.json.decode(msg.value, type=Decision)
        if d.rose:
            first[d.person] = min(d.ts, first.get(d.person, d.ts))
    lost = [ep for ep in city.truth if ep.engaged and ep.first_loss_ts]
    reached = sum(1 for ep in lost if any(ep.start_ts <= first.get(k, 1 << 62) < ep.first_loss_ts  # type: ignore[operator]
                                          for k in (ep.victim, ep.victim_line)))
    return reached, len(lost)


def run_demo(settings: Settings, residents: int, days: int, seed: int, keep: bool) -> int:
    """Start everything, stream the city, print what came out, and stop what was started (unless --keep)."""
    print("== starting the local stack (Apache Kafka + Redis) ==", flush=True)
    for st in stack.up(settings):
        print("  " + st.line())
    create_topics(settings)
    services = _start(settings)
    try:
        starts = {t: end_offsets(settings, t) for t in COUNTED}
        city = City(CityConfig(residents=residents, days=days, seed=seed, attempts_per_10k_per_day=60))
        print(f"== streaming a simulated city: {residents:,} residents, {days} days, seed {seed} ==", flush=True)
        t0 = time.monotonic()
        sent = stream_city(settings, city, out=settings.data_dir / "simulations" / f"demo-seed-{seed}",
                           progress=lambda n, _: print(f"\r  {n:,} records sent", end="", flush=True))
        total = sum(sent.values())
        print(f"\r  {total:,} records sent in {time.monotonic() - t0:.0f}s; waiting for the pipeline to settle")
        counts = _wait_drained(settings, starts)
        receipts = Counter()
        for msg in read_to_end(settings, settings.topic("outcomes")):
            if msg.offset >= starts["outcomes"].get(msg.partition, 0):
                receipts[msgspec.json.decode(msg.value, type=Outcome).outcome] += 1
        tiers = Counter()
        for msg in read_to_end(settings, settings.topic("yujing.decisions")):
            if msg.offset >= starts["yujing.decisions"].get(msg.partition, 0):
                d = msgspec.json.decode(msg.value, type=Decision)
                if d.rose:
                    tiers[d.tier] += 1
        reached, lost = _reached_before_loss(settings, city, starts["yujing.decisions"])
        rows = [
            ("signals in (telecom, payment, domain)", sum(v for k, v in sent.items() if k.startswith("signals."))),
            ("dead-lettered", counts["deadletter"]),
            ("warnings (T1 / T2 / T3)", f"{counts['warnings']} ({tiers['T1']} / {tiers['T2']} / {tiers['T3']})"),
            ("SMS queued / delivered so far (night reminders wait for 08:00)",
             f"{counts['dispatch.sms']} / {receipts['sms_delivered']}"),
            ("calls queued for stations", counts["dispatch.phone"]),
            ("visits queued for grids", counts["dispatch.visit"]),
            ("stop-payment requests to banks", counts["interception.payment"]),
            ("accounts under control (one card in a case)", counts["interception.account"]),
            ("domains / numbers to block", f"{counts['interception.domain']} / {counts['interception.number']}"),
            ("victims warned before their first loss (vs truth)", f"{reached} of {lost}"),
        ]
        print("\n== what came out of Kafka ==")
        for label, value in rows:
            print(f"  {label:<64}{value:>14}")
        print(f"  ground truth: {settings.data_dir / 'simulations' / f'demo-seed-{seed}' / 'truth.jsonl'}")
        print(f"  logs: {settings.data_dir / 'logs'}")
        if keep:
            print(f"--keep: everything keeps running; the SMS test gateway lists what it sent at "
                  f"http://127.0.0.1:{GATEWAY_PORT}/admin/messages; stop with `yujing stack down` and Ctrl-C here")
            while True:
                time.sleep(3600)
        return 0 if counts["warnings"] > 0 and counts["deadletter"] == 0 else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what the demo started")
        return 130
    finally:
        services.stop()
        if not keep:
            stack.down(settings)
