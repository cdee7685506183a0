"""`yujing demo`: the main job; a simulated city streamed through the real pipeline, warnings dispatched.

Starts the local stack, creates the topics, trains or loads the model, starts the worker(s) in one consumer
group, the local SMS test gateway with the SMS gateway adapter, the grid workers' task feed and a test bank
answering stop-payments; streams a simulated city into Kafka with a live progress line, waits until the pipeline
is quiet, and prints a summary.
Every number in it comes from the running system (Kafka topics, Redis, the workers' metrics), except the
"reached before loss" line, which compares the warnings with the simulator's ground truth.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
from tqdm import tqdm

from deploy import stack
from deploy.city_stream import feed_as_producer, stream_city
from deploy.config import Settings
from deploy.progress import record_bar
from deploy.redis_client import connect
from deploy.shadow import shadow_report, shadow_run
from deploy.task_feed_service import feed_prefix
from deploy.topics import create_topics
from deploy.workers import WorkerProcess, start_workers
from dispatch.review import REVIEW_FILE, ReviewStore
from dispatch.task_queue import TaskQueues
from dispatch.tasks import Scope
from ops.access import ConsoleTokens
from ops.metrics import sample_quantile, scrape_samples
from schemas.internal import Decision
from schemas.records import BankReply, Outcome, PaymentInterception, is_progress
from schemas.topics import REPLY_TOPIC
from scorers.lab.city import City, CityConfig
from scorers.model import load
from streams.kafka_io import end_offsets_of, group_lag, pipeline_groups, read_to_end

GATEWAY_PORT, SMS_METRICS_PORT = 9110, 9111
COUNTED = ("deadletter", "yujing.decisions", "warnings", "dispatch.sms", "dispatch.phone", "dispatch.visit",
           "interception.payment", "interception.account", "interception.domain", "interception.number", "outcomes",
           REPLY_TOPIC)


@dataclass
class Services:
    """The processes the demo started, to stop them all at the end (or on Ctrl-C)."""

    workers: list[WorkerProcess]
    others: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for proc in self.others:
            proc.terminate()
        for proc in self.others:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for w in self.workers:
            w.stop()


def _start(settings: Settings, workers: int) -> Services:
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"== starting {workers} pipeline worker(s) in one consumer group "
          "(the first run trains the default model: about 1.5 min) ==", flush=True)
    started = start_workers(settings, workers, logs)
    env = {**os.environ, **settings.to_env()}
    if not settings.sms_key_id:  # the local test gateway's credentials, made for this demo
        env.update(SMS_KEY_ID="yujing", SMS_SECRET=secrets.token_hex(4), SMS_APP_ID="1400000001")

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "deploy.cli", *args], env=env,
                                stdout=open(logs / f"{name}.log", "ab"), stderr=subprocess.STDOUT)

    others = [spawn("test-gateway", "test-gateway", "--port", str(GATEWAY_PORT)),
              spawn("sms-gateway", "sms-gateway", "--clock", "event", "--url", f"http://127.0.0.1:{GATEWAY_PORT}",
                    "--receipt-every", "2",
                    "--rate", "200", "--metrics-port", str(SMS_METRICS_PORT)),
              spawn("task-feed", "task-feed", "--clock", "event"),
              spawn("test-bank", "test-bank")]
    return Services(started, others)


def worker_metrics(workers: list[WorkerProcess]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every worker's /metrics, summed sample by sample."""
    total: Counter = Counter()
    for w in workers:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{w.settings.web_port}/metrics", timeout=5) as resp:
                total.update(scrape_samples(resp.read().decode()))
        except OSError:
            continue
    return dict(total)


def _metric(samples: dict, name: str, **labels: str) -> float:
    """A metric summed over every label value not given."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def lag(settings: Settings) -> int:
    """Messages the workers' consumer group has not committed yet, over every topic it reads."""
    return group_lag(settings, pipeline_groups(settings)) or 0


def _ingested(samples: dict) -> int:
    return int(sum(_metric(samples, "yujing_events_in_total", topic=t)
                   for t in ("signals.telecom", "signals.payment", "signals.domain")))


def _progress_note(samples: dict, behind: int) -> str:
    tiers = "/".join(str(int(_metric(samples, "yujing_warnings_total", tier=t))) for t in ("T1", "T2", "T3"))
    return (f"waiting in the stages {behind:,}, warnings T1/T2/T3 {tiers}, "
            f"SMS {int(_metric(samples, 'yujing_dispatches_total', channel='sms'))}, "
            f"calls {int(_metric(samples, 'yujing_dispatches_total', channel='phone'))}, "
            f"visits {int(_metric(samples, 'yujing_dispatches_total', channel='visit'))}, "
            f"stop requests {int(_metric(samples, 'yujing_interceptions_total', kind='payment'))}")


def _wait_drained(settings: Settings, services: Services, starts: dict[str, dict[int, int]], signals_total: int,
                  limit_s: float = 1800) -> None:
    """Wait until the group has committed everything and the outputs stopped growing for a while."""
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + limit_s
    with tqdm(desc="  ingested", total=signals_total, unit=" signals", file=sys.stdout, mininterval=0.0) as bar:
        while time.monotonic() < deadline:
            ends = _produced(settings, starts)
            behind = lag(settings)
            samples = worker_metrics(services.workers)
            bar.set_postfix_str(_progress_note(samples, behind), refresh=False)
            bar.update(min(signals_total, _ingested(samples)) - bar.n)
            if ends != last or behind:
                last, stable_since = ends, time.monotonic()
            elif time.monotonic() - stable_since >= 6:
                break
            if not all(w.running for w in services.workers):
                raise RuntimeError("a worker stopped; see its log under DATA/logs")
            time.sleep(1)


def _produced(settings: Settings, starts: dict[str, dict[int, int]]) -> dict[str, int]:
    """Messages written to each counted topic since `starts`."""
    ends = end_offsets_of(settings, COUNTED)
    return {t: sum(ends[t].values()) - sum(starts[t].values()) for t in COUNTED}


def _read(settings: Settings, topic: str, after: dict[int, int]) -> list[bytes]:
    """The records of a topic from the offsets `after` on (progress records left out)."""
    return [m.value for m in read_to_end(settings, settings.topic(topic))
            if m.offset >= after.get(m.partition, 0) and not is_progress(m.key)]


def _bank_answers(settings: Settings, after: dict[int, int], transfers: set[str],
                  timeout_s: float = 30.0) -> dict[str, BankReply]:
    """The latest answer per transfer, once every stop-payment has one (or after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        latest: dict[str, BankReply] = {}
        for raw in _read(settings, REPLY_TOPIC, after):
            r = msgspec.json.decode(raw, type=BankReply)
            if r.transfer_id not in latest or latest[r.transfer_id].ts <= r.ts:
                latest[r.transfer_id] = r
        if transfers <= set(latest) or time.monotonic() > deadline:
            return latest
        time.sleep(1)


def _reached_before_loss(decisions: list[Decision], city: City) -> tuple[int, int]:
    """Victims with a loss who had a warning before it (decisions from Kafka, truth from the simulator)."""
    first: dict[str, int] = {}
    for d in decisions:
        if d.rose:
            first[d.person] = min(d.ts, first.get(d.person, d.ts))
    lost = [ep for ep in city.truth if ep.engaged and ep.first_loss_ts]
    reached = sum(1 for ep in lost if any(ep.start_ts <= first.get(k, 1 << 62) < ep.first_loss_ts  # type: ignore[operator]
                                          for k in (ep.victim, ep.victim_line)))
    return reached, len(lost)


async def _queued_tasks(settings: Settings) -> tuple[int, int, str]:
    """Tasks waiting in the grid and station queues (Redis), in how many queues, and the busiest grid."""
    client = connect(settings.redis_url, **settings.redis_options())
    try:
        depths = await TaskQueues(client, feed_prefix(settings), 0).depths()
    finally:
        await client.aclose()
    grids = sorted(((n, q.split(":", 1)[1]) for q, (n, _) in depths.items() if q.startswith("visit:G")), reverse=True)
    return (sum(n for n, _ in depths.values()), sum(1 for n, _ in depths.values() if n),
            grids[0][1] if grids else "G0000")


async def _demo_token(settings: Settings, grid: str) -> str:
    client = connect(settings.redis_url, **settings.redis_options())
    try:
        return await TaskQueues(client, feed_prefix(settings), 0).issue_token(Scope("demo-worker", "grid", grid),
                                                                              12 * 3600, int(time.time() * 1000))
    finally:
        await client.aclose()


async def _console_token(settings: Settings) -> str:
    client = connect(settings.redis_url, **settings.redis_options())
    try:
        return await ConsoleTokens(client, settings.redis_prefix).issue("demo-operator", "analyst", 12 * 3600,
                                                                        int(time.time() * 1000))
    finally:
        await client.aclose()


def _review_rows(settings: Settings, samples: dict) -> list[tuple[str, str]]:
    """What the review queue saw: decisions held for an analyst, dispatched at their deadline, waiting now."""
    async def depth() -> int:
        client = connect(settings.redis_url, **settings.redis_options())
        try:
            return (await ReviewStore(client, settings.redis_prefix).depth())[0]
        finally:
            await client.aclose()

    held, timed_out = (int(_metric(samples, "yujing_review_decisions_total", event=e)) for e in ("held", "timed_out"))
    return [("held for quick assessment / sent at the deadline / waiting (/console/review)",
             f"{held} / {timed_out} / {asyncio.run(depth())}")]


def _shadow_rows(settings: Settings, report: Path) -> list[tuple[str, str]]:
    """A candidate in shadow: the live model under a stricter policy (the T2 and T3 score thresholds doubled),
    replayed on the same input, compared."""
    policy = load(settings.model_path).tier_policy().to_dict()
    t2 = min(1.0, policy["t2"]["score"] * 2)
    candidate = {**policy, "version": f"{policy['version']}-stricter", "t2": {**policy["t2"], "score": t2},
                 "t3": {**policy["t3"], "score": min(t2, policy["t3"]["score"] * 2)}}
    (report / "candidate-tiers.json").write_text(json.dumps(candidate, indent=2))
    shadow_run(settings, settings.model_path, report / "candidate-tiers.json")
    r = shadow_report(settings, None, None)
    (report / "shadow.json").write_text(json.dumps(r.to_dict(), ensure_ascii=False, indent=2))
    return [("shadow: T2 and T3 score thresholds ×2 against the live policy: persons warned",
             f"{r.candidate.warned} vs "
             f"{r.live.warned}"),
            ("shadow: warned only by the candidate / only live / at another tier",
             f"{len(r.added)} / {len(r.removed)} / {len(r.changed_tier)}")]


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _warning_lines(warnings: list[dict]) -> str:
    """Every warning record of the run, in a stable order: what two runs of one city (one broker and Redis, or
    the clusters) are compared by."""
    keep = ("warning_id", "subject_id", "tier", "fraud_type", "score", "ts", "respond_by_ts", "channels")
    rows = sorted(({k: w[k] for k in keep} for w in warnings), key=lambda w: (w["warning_id"], w["tier"], w["ts"]))
    return "".join(json.dumps(w, ensure_ascii=False, sort_keys=True) + "\n" for w in rows)


def run_demo(settings: Settings, residents: int, days: int, seed: int, keep: bool, workers: int = 1,
             speed: float = 0.0, attempts: float = 60.0) -> int:
    """Start everything, stream the city, print what came out, and stop what was started (unless --keep)."""
    if not settings.progress_producers:  # the city feed is the demo's one provider: its word, not the idle time
        settings = replace(settings, progress_producers=feed_as_producer())
    if not settings.review_policy:  # the shipped quick-assessment policy: T2/T3 without a case element wait
        settings = replace(settings, review_policy=str(REVIEW_FILE))
    print("== starting the local stack (Apache Kafka + Redis) ==", flush=True)
    for st in stack.up(settings):
        print("  " + st.line())
    create_topics(settings)
    services = _start(settings, workers)
    console_token = asyncio.run(_console_token(settings))
    print(f"  console: http://127.0.0.1:{settings.web_port}/console (sign in with the token {console_token}; more: "
          f"yujing console-token --holder NAME --role viewer|analyst)\n"
          f"  metrics: http://127.0.0.1:{settings.web_port}/metrics"
          f"   task feed: http://127.0.0.1:{settings.feed_port}/v1/tasks", flush=True)
    try:
        starts = end_offsets_of(settings, COUNTED)
        city = City(CityConfig(residents=residents, days=days, seed=seed, attempts_per_10k_per_day=attempts))
        pace = f"{speed:g}× event time" if speed else "as fast as Kafka takes them"
        print(f"== streaming a simulated city: {residents:,} residents, {days} days, seed {seed}, {pace} ==", flush=True)
        t0 = time.monotonic()
        bar, progress = record_bar("  sent")
        with bar:
            sent = stream_city(settings, city, speed=speed, registry_first=True, progress=progress,
                               out=settings.data_dir / "simulations" / f"demo-seed-{seed}")
            progress(sum(sent.values()))
        signals = sum(v for k, v in sent.items() if k.startswith("signals."))
        print(f"  {sum(sent.values()):,} records sent in {time.monotonic() - t0:.0f}s; the pipeline works through them")
        _wait_drained(settings, services, starts, signals)
        elapsed = time.monotonic() - t0
        samples = worker_metrics(services.workers)

        decisions = [msgspec.json.decode(v, type=Decision) for v in _read(settings, "yujing.decisions",
                                                                          starts["yujing.decisions"])]
        warnings = [msgspec.json.decode(v) for v in _read(settings, "warnings", starts["warnings"])]
        tiers = Counter(w["tier"] for w in {w["warning_id"]: w for w in warnings}.values())
        receipts = Counter(msgspec.json.decode(v, type=Outcome).outcome
                           for v in _read(settings, "outcomes", starts["outcomes"]))
        requests = [msgspec.json.decode(v, type=PaymentInterception)
                    for v in _read(settings, "interception.payment", starts["interception.payment"])]
        stops = {p.transfer_id: p for p in requests}  # each T1 event of a transfer asks again, same transfer_id
        answers = _bank_answers(settings, starts[REPLY_TOPIC], set(stops))
        held = sum(r.held_fen or 0 for r in answers.values() if r.reply == "held")
        replied = Counter(r.reply for r in answers.values())
        counts = _produced(settings, starts)
        reached, lost = _reached_before_loss(decisions, city)
        waiting, queues, busiest = asyncio.run(_queued_tasks(settings))
        rows = [
            ("signals processed (telecom, payment, domain; worker metrics)",
             f"{int(_metric(samples, 'yujing_events_in_total', topic='signals.telecom') + _metric(samples, 'yujing_events_in_total', topic='signals.payment') + _metric(samples, 'yujing_events_in_total', topic='signals.domain')):,}"),
            ("end-to-end signals per second (this run, all stages)", f"{signals / elapsed:,.0f}"),
            ("dead-lettered", counts["deadletter"]),
            ("warnings (T1 / T2 / T3)", f"{sum(tiers.values())} ({tiers['T1']} / {tiers['T2']} / {tiers['T3']})"),
            ("SMS queued / delivered by receipt / failed (night ones wait for 08:00)",
             f"{counts['dispatch.sms']} / {receipts['sms_delivered']} / {receipts['sms_failed']}"),
            ("calls queued for stations", counts["dispatch.phone"]),
            ("visits queued for grids", counts["dispatch.visit"]),
            ("tasks waiting in the grid and station feeds (Redis)", f"{waiting} in {queues} queues"),
            ("transfers stopped: requests to banks (amount)",
             f"{len(stops)}: {len(requests)} (¥{sum(p.amount_fen for p in stops.values()) / 100:,.2f})"),
            ("banks' answers: held / too late / refused / released (amount held)",
             f"{replied['held']} / {replied['too_late']} / {replied['refused']} / {replied['released']} "
             f"(¥{held / 100:,.2f})"),
            ("accounts under control (one card in a case)", counts["interception.account"]),
            ("domains / numbers to block", f"{counts['interception.domain']} / {counts['interception.number']}"),
            ("signal → warning latency p50 / p99 (worker metrics)",
             f"{_seconds(sample_quantile(samples, 'yujing_signal_to_warning_seconds', 0.5))} / "
             f"{_seconds(sample_quantile(samples, 'yujing_signal_to_warning_seconds', 0.99))}"),
            ("transfer → stop-payment latency p50 / p99",
             f"{_seconds(sample_quantile(samples, 'yujing_transfer_to_stop_payment_seconds', 0.5))} / "
             f"{_seconds(sample_quantile(samples, 'yujing_transfer_to_stop_payment_seconds', 0.99))}"),
            ("victims warned before their first loss (vs the simulator's truth)", f"{reached} of {lost}"),
            *_review_rows(settings, samples),
        ]
        report = settings.data_dir / "reports" / f"demo-seed-{seed}"
        report.mkdir(parents=True, exist_ok=True)
        rows += _shadow_rows(settings, report)
        (report / "warnings.jsonl").write_text(_warning_lines(warnings), encoding="utf-8")
        (report / "summary.json").write_text(json.dumps(dict((k, str(v)) for k, v in rows), ensure_ascii=False, indent=2))
        print("\n== what came out of the running system ==")
        for label, value in rows:
            print(f"  {label:<68}{value:>22}")
        if not speed:
            print("  (fed as fast as Kafka takes them: latencies include the time a signal waited in the backlog;"
                  " --speed paces the feed)")
        print(f"  report: {report / 'summary.json'}   ground truth: "
              f"{settings.data_dir / 'simulations' / f'demo-seed-{seed}' / 'truth.jsonl'}   logs: {settings.data_dir / 'logs'}")
        if keep:
            grid = busiest
            token = asyncio.run(_demo_token(settings, grid))
            print(f"--keep: everything keeps running.\n  console    http://127.0.0.1:{settings.web_port}/console"
                  f"   (token {console_token})\n"
                  f"  task feed  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{settings.feed_port}/v1/tasks"
                  f"   (grid {grid}; more tokens: yujing feed-token --grid G --worker NAME)\n"
                  f"  SMS sent   http://127.0.0.1:{GATEWAY_PORT}/admin/messages\n"
                  "  Ctrl-C stops all of it, Kafka and Redis included.")
            while True:
                time.sleep(3600)
        return 0 if sum(tiers.values()) > 0 and counts["deadletter"] == 0 else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything the demo started")
        keep = False  # Ctrl-C stops the stack too, also after --keep
        return 130
    finally:
        services.stop()
        if not keep:
            stack.down(settings)
