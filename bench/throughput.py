"""End-to-end throughput of the pipeline on the real broker, beside two references on the same input and broker.

    .venv/bin/python -m bench.throughput [--residents 2000 --days 2 --workers 1 2]

The same simulated city is produced once into fresh topics; then, one after the other, each reader consumes
all of its signals from the beginning: the raw consume ceiling (aiokafka `getmany`, no processing), a bare
Faust agent that decodes and forwards, and the pipeline at 1 and 2 workers. The bare Faust readers are
timed by their consumer group's lag, from its first progress (a commit) to the end, over the signals not yet
committed at that first progress, so start-up is not counted. The pipeline's workers start on empty topics and
settle in their group; the city is then produced flat out (the registry first), and timed from its first signal
sent until every group has committed everything (all the topics they read, internal ones too): producer and
pipeline run together, and the producer's own time is reported beside. Results go to stdout as JSON and a
table of ratios.
With `--only latency`, one worker is fed at each `--rates` and every decision, warning and stop-payment request is
timed as a consumer reads it (read time minus the originating signal's Kafka timestamp): p50, p99 and max, with
the worker's CPU per signal fed. Those runs feed and read through librdkafka (the `bench` extra), so that the
load generator takes little of the CPU the worker and the broker share.
Needs a running stack (`yujing stack up`, or KAFKA_BOOTSTRAP / REDIS_URL).
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import msgspec
import numpy
from aiokafka import AIOKafkaConsumer

from deploy.city_stream import FEED_PRODUCER, feed_as_producer, stream_city
from deploy.config import Settings, load_settings
from deploy.topics import create_topics
from deploy.workers import WorkerProcess
from ops.metrics import scrape_samples
from schemas.records import is_progress
from schemas.topics import SIGNAL_TOPICS
from scorers.lab.city import City, CityConfig
from scorers.lab.training import model_dir
from streams.kafka_io import end_offsets_of, group_lag, group_lags, pipeline_groups, read_table, read_to_end


def time_drain(settings: Settings, groups: str | tuple[str, ...], alive: Callable[[], bool],
               timeout: float = 1800.0) -> tuple[float, int]:
    """Seconds from the groups' first progress (a commit) until nothing is left behind (lag 0 twice in a row),
    and how many signals were still to read at that first progress: the signals the seconds are for."""
    first_lag, t_first, left, zeros, deadline = None, None, 0, 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"a reader of {groups} exited")
        lag = group_lag(settings, groups)
        now = time.monotonic()
        if lag is not None and t_first is None:
            first_lag, t_first = lag, now  # the group has committed once: it is reading
            left = signals_left(settings, groups)
        if lag == 0 and t_first is not None:
            zeros += 1
            if zeros == 2:
                return now - t_first, left
        else:
            zeros = 0
        time.sleep(0.5)
    raise RuntimeError(f"{groups} did not drain in {timeout}s (first lag {first_lag})")


def signals_left(settings: Settings, groups: str | tuple[str, ...]) -> int:
    """Signals the groups have not committed (a partition never committed counts whole)."""
    lags = group_lags(settings, groups)
    ends = end_offsets_of(settings, SIGNAL_TOPICS)
    left = 0
    for logical, partitions in ends.items():
        for p, end in partitions.items():
            done = [n for tp, n in lags.items() if tp.topic == settings.topic(logical) and tp.partition == p]
            left += done[0] if done else end
    return left


async def raw_consume(settings: Settings, expected: int) -> float:
    """Seconds for aiokafka `getmany` to read `expected` records of the signal topics, doing nothing with them."""
    consumer = AIOKafkaConsumer(*(settings.topic(t) for t in SIGNAL_TOPICS), bootstrap_servers=settings.kafka_bootstrap,
                                group_id=f"{settings.app_id}-raw", auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        seen, t0 = 0, None
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            n = sum(len(v) for v in batches.values())
            if n and t0 is None:
                t0 = time.monotonic()
            seen += n
        assert t0 is not None
        return time.monotonic() - t0
    finally:
        await consumer.stop()


def run_bare(settings: Settings, log: Path, take: int = 0) -> tuple[float, int]:
    """Seconds for the bare Faust agent to decode and forward the signals, and how many (`time_drain`; `take` > 0:
    by batches of that many, each forwarded as one message)."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1", "BENCH_TAKE": str(take)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.bare_agent"], env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return time_drain(settings, f"{settings.app_id}-bare", lambda: proc.poll() is None)
    finally:
        proc.terminate()
        proc.wait(30)


def run_pipeline(settings: Settings, workers: int, logs: Path, city: CityConfig) -> dict[str, float | list[float]]:
    """`workers` pipeline workers started on empty topics and settled in their group; then the city is produced
    flat out (the registry first, loaded) and timed from its first signal sent until every group has committed
    everything: the seconds, the producer's own seconds, and each worker's resident memory (MiB) once drained."""
    procs = []
    try:
        for i in range(workers):
            s = dataclasses.replace(settings, web_port=settings.web_port + 1 + i, data_dir=settings.data_dir / f"w{i}")
            shutil.copytree(model_dir(settings.data_dir), model_dir(s.data_dir), dirs_exist_ok=True)
            procs.append(WorkerProcess(s, logs / f"worker-{workers}-{i}.log").start(ready_timeout=300))
        wait_settled(settings, pipeline_groups(settings)[1], workers)
        pids = [p.proc.pid for p in procs if p.proc is not None]
        times: dict[str, float] = {}
        cpu_before: list[float] = []

        def first_signal() -> None:
            times.setdefault("start", time.monotonic())
            cpu_before.extend(cpu_seconds(pid) for pid in pids)

        counts = stream_city(settings, City(city), registry_first=True, at_first_signal=first_signal)
        times["fed"] = time.monotonic()
        zeros = 0
        while zeros < 2:
            if not all(p.running for p in procs):
                raise RuntimeError("a worker exited")
            zeros = zeros + 1 if group_lag(settings, pipeline_groups(settings)) == 0 else 0
            time.sleep(0.25)
        drained = time.monotonic()
        return {"signals": sum(v for k, v in counts.items() if k.startswith("signals.")),
                "seconds": drained - times["start"], "producer_seconds": times["fed"] - times["start"],
                "rss_mib": [resident_mib(pid) for pid in pids],
                "cpu_seconds": [cpu_seconds(pid) - c for pid, c in zip(pids, cpu_before)]}
    finally:
        for p in procs:
            p.stop()


def wait_settled(settings: Settings, group: str, members: int, timeout: float = 120.0) -> None:
    """Until the consumer group is stable with `members` members (every worker holds its partitions)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = admin.describe_groups([group])[group]
            if info["group_state"] == "Stable" and len(info["members"]) == members:
                return
            time.sleep(0.5)
        raise RuntimeError(f"{group} not stable with {members} members in {timeout:.0f} s")
    finally:
        admin.close()


def resident_mib(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def changelog_cost(settings: Settings, signals: int) -> dict[str, dict[str, float]]:
    """Per table: changelog records and bytes (key + value) per input signal, read back from its changelog."""
    cost = {}
    for table in ("persons", "values", "pending", "marks", "value-marks", "identity"):
        records = read_to_end(settings, f"{settings.app_id}-{table}-changelog")
        size = sum(len(m.key or b"") + len(m.value or b"") for m in records)
        cost[table] = {"records_per_signal": round(len(records) / signals, 3),
                       "bytes_per_signal": round(size / signals, 1)}
    return cost


def paced_city(settings: Settings, city: City, rate: float, slice_s: float = 0.005,
               progress_every_s: float | None = None) -> int:
    """Send the city's registry (loaded first), then its other records at `rate` signals per second; how many
    signals. The records are encoded beforehand and sent by librdkafka, those due every `slice_s` together:
    kafka-python sending one record at a time took 58 % of a core at 2,000/s here, this takes about 7 %, so the
    load generator leaves the two cores to the worker and the broker it is measuring. With `progress_every_s`, the
    feed's word goes that often to every partition of the topics where the settings count it (`word_destinations`)."""
    from confluent_kafka import Producer

    from deploy.city_stream import contract_key, progress_record, wait_for_identity, word_destinations

    if rate <= 0:
        raise ValueError(f"a rate of signals per second must be positive, not {rate}")
    registry: list[tuple[str, bytes, bytes, int]] = []
    feed: list[tuple[str, bytes, bytes, int]] = []  # -1: the partition the key gives
    stamps: list[int] = []  # the feed's event times, in order
    signals: list[int] = []  # signals among the feed's records up to each one
    subjects: set[str] = set()
    for topic, rec in city.records():
        record = (settings.topic(topic), contract_key(rec), msgspec.json.encode(rec), -1)
        if topic == "registry.subjects" and not feed:
            registry.append(record)
            subjects.add(rec.subject_id)  # type: ignore[attr-defined]
        else:
            feed.append(record)
            stamps.append(rec.ts)  # type: ignore[attr-defined]
            signals.append((signals[-1] if signals else 0) + topic.startswith("signals."))
    # murmur2 as the Java client, kafka-python and the pipeline: the same keys on the same partitions; idempotent,
    # so a retry cannot reorder a partition (the watermarks take each to be in event-time order)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "linger.ms": 5,
                         "partitioner": "murmur2_random", "enable.idempotence": True})
    failed: list[str] = []
    meta = producer.list_topics(timeout=30).topics
    everywhere = word_destinations(settings, lambda topic: meta[topic].partitions if topic in meta else None)

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    def send(records: Iterable[tuple[str, bytes, bytes, int]]) -> None:
        for topic, key, value, partition in records:
            while True:
                try:
                    producer.produce(topic, value, key, partition=partition, on_delivery=delivered)
                    break
                except BufferError:  # its queue is full: let it deliver
                    producer.poll(0.01)
        producer.poll(0)

    send(registry)
    if producer.flush(60) or failed:
        raise RuntimeError(f"the registry was not delivered: {failed[:1]}, or 60 s passed")
    wait_for_identity(settings, subjects)
    sent, t0, said_at = 0, time.monotonic(), float("-inf")
    while sent < len(feed):
        due = bisect.bisect_right(signals, (time.monotonic() - t0) * rate, lo=sent)
        send(feed[sent:due])
        sent = due
        if progress_every_s and everywhere and sent < len(feed) and time.monotonic() - said_at >= progress_every_s:
            key, value = progress_record(FEED_PRODUCER, stamps[sent])  # what comes next is not earlier
            send((topic, key, value, p) for topic, p in everywhere)
            said_at = time.monotonic()
        time.sleep(slice_s)
    if progress_every_s and everywhere and stamps:  # the last word: nothing more is coming
        key, value = progress_record(FEED_PRODUCER, stamps[-1] + 1)
        send((topic, key, value, p) for topic, p in everywhere)
    if producer.flush(120) or failed:
        raise RuntimeError(f"the city was not all delivered: {len(failed)} failed ({failed[:1]}), or 120 s passed")
    return signals[-1] if signals else 0


def one_worker(base: Settings, model: str | Path, data: Path, tag: str, log: Path) -> tuple[Settings, WorkerProcess]:
    """One worker with topics, group and data of its own (a copy of `model`), started."""
    s = fresh(base, data, tag)
    shutil.copytree(model, s.model_path)
    return s, WorkerProcess(s, log).start(ready_timeout=300)


def worker_samples(s: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{s.web_port}/metrics", timeout=5) as resp:
        return scrape_samples(resp.read().decode())


def loop_stalls(after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
                before: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float | None]:
    """How often the worker's event loop woke more than 0.1 s and 0.25 s late between two scrapes, and the bucket
    its longest stall is in (`yujing_event_loop_lag_seconds`, observed every 10 ms)."""
    name = "yujing_event_loop_lag_seconds_bucket"
    buckets = sorted((float(dict(labels)["le"]), value - before.get((sample, labels), 0.0))
                     for (sample, labels), value in after.items() if sample == name)
    total = buckets[-1][1] if buckets else 0.0
    at = dict(buckets)
    return {"loop_lag_samples": total, "loop_lags_over_0.1s": total - at.get(0.1, total),
            "loop_lags_over_0.25s": total - at.get(0.25, total),
            "loop_lag_max_at_most_s": next((le for le, n in buckets if n == total), None) if total else None}


def hot_path_phases(after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
                    before: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """Seconds the hot path spent in each phase between two scrapes (`yujing_hot_path_seconds_total`): taking
    checkpoints (the stages wait meanwhile), processing, sending, fetching."""
    name = "yujing_hot_path_seconds_total"
    return {f"hot_path_seconds {dict(labels)['phase']}": round(value - before.get((sample, labels), 0.0), 3)
            for (sample, labels), value in sorted(after.items()) if sample == name}


class OutputClock:
    """Per-message latency of the pipeline's outputs as their consumer sees them: the time each message is read
    (wall clock) minus its Kafka timestamp, which the pipeline sets to the originating signal's Kafka timestamp."""

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        # librdkafka waits for records in its own threads: a Python consumer polling every few ms took a quarter
        # of a core here, from the two the worker and the broker share
        self.consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"clock-{uuid.uuid4()}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
        meta = self.consumer.list_topics(timeout=30).topics
        self.consumer.assign([TopicPartition(settings.topic(t), p, OFFSET_BEGINNING) for t in topics
                              for p in sorted(meta[settings.topic(t)].partitions)])
        self.seconds: dict[str, list[float]] = {t: [] for t in topics}
        self.origins: dict[str, list[float]] = {t: [] for t in topics}  # each one's Kafka timestamp (s), in order
        self._names = {settings.topic(t): t for t in topics}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "OutputClock":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self.consumer.poll(0.05)  # as soon as one is there (consume() waits for a batch or its timeout)
            messages = [first, *self.consumer.consume(1000, timeout=0)] if first is not None else []
            now_ms = time.time() * 1000
            for m in messages:
                topic = m.topic()
                if m.error() is None and topic is not None and not is_progress(m.key()):  # not the decider's
                    name = self._names[topic]
                    self.seconds[name].append((now_ms - m.timestamp()[1]) / 1000)
                    self.origins[name].append(m.timestamp()[1] / 1000)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, all its threads (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile by nearest rank: the smallest value with at least q of them at or below it (None for none)."""
    return float(numpy.quantile(values, q, method="inverted_cdf")) if values else None


def latency_at(base: Settings, model: str, city: City, rate: float, work: Path,
               progress_every_s: float | None = None) -> dict[str, float | None]:
    """p50/p99/max signal → decision, signal → warning and transfer → stop-payment of one worker fed at `rate`
    signals per second, from every decision, warning and stop-payment request as its consumer reads it. With
    `progress_every_s`, the feed sends its progress that often and the worker counts it."""
    if progress_every_s:
        base = dataclasses.replace(base, progress_producers=feed_as_producer())
    s, worker = one_worker(base, model, work / f"lat-{int(rate)}", f"{uuid.uuid4().hex[:6]}l{int(rate)}",
                           work / f"latency-{int(rate)}.log")
    assert worker.proc is not None
    try:
        with OutputClock(s, ("yujing.decisions", "warnings", "interception.payment")) as clock:
            cpu_before = cpu_seconds(worker.proc.pid)
            samples_before = worker_samples(s)
            signals = paced_city(s, city, rate, progress_every_s=progress_every_s)
            time_drain(s, pipeline_groups(s), lambda: worker.running)
            # decisions still waiting for the watermark, and the dispatch they lead to, come after the groups'
            # lag is nil: until none waits (as the table's last checkpoint says), then no output for 5 s
            deadline = time.monotonic() + 120
            while read_table(s, "pending") and time.monotonic() < deadline:
                time.sleep(1)
            seen, calm = -1, 0
            while calm < 5:
                time.sleep(1)
                now_seen = sum(len(v) for v in clock.seconds.values())
                calm, seen = (calm + 1, seen) if now_seen == seen else (0, now_seen)
            cpu = cpu_seconds(worker.proc.pid) - cpu_before
            samples = worker_samples(s)
    finally:
        worker.stop()
    # the worker's CPU per signal fed: steadier than a saturated worker's latency, and what sets its headroom
    out: dict[str, float | None] = {"worker_cpu_us_per_signal": round(cpu / signals * 1e6, 1) if signals else None}
    out.update(loop_stalls(samples, samples_before))
    out.update(hot_path_phases(samples, samples_before))
    # each output's latency in the order read, and its Kafka timestamp: when the slow ones came
    (work / f"latency-{int(rate)}.json").write_text(json.dumps({"seconds": clock.seconds, "origins": clock.origins}))
    for topic, name in (("yujing.decisions", "signal_to_decision_seconds"), ("warnings", "signal_to_warning_seconds"),
                        ("interception.payment", "transfer_to_stop_payment_seconds")):
        values = clock.seconds[topic]
        out[f"{name} count"] = float(len(values))
        for q in (0.5, 0.99, 1.0):
            out[f"{name} {'max' if q == 1.0 else f'p{int(q * 100)}'}"] = quantile(values, q)
    return out


def fresh(base: Settings, data: Path, tag: str) -> Settings:
    """Settings with topics, groups and data of their own."""
    s = dataclasses.replace(base, topic_prefix=f"bench{tag}.", app_id=f"bench-{tag}", data_dir=data,
                            kafka_external=True, redis_external=True)
    create_topics(s)
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", choices=["raw", "bare", "take", "pipeline", "latency"], nargs="+",
                        default=["raw", "bare", "pipeline"])
    parser.add_argument("--take", type=int, default=1000, help="batch size of the bare agent's take() (--only take)")
    parser.add_argument("--rates", type=float, nargs="+", default=[300.0, 5000.0],
                        help="signals per second fed for the latency runs (--only latency)")
    parser.add_argument("--attempts", type=float, default=60.0,
                        help="fraud attempts per 10k residents per day (more give more warnings to time)")
    parser.add_argument("--progress-ms", type=float, default=0.0,
                        help="the latency runs' feed sends its progress to every input partition this often and the "
                             "worker counts it (YUJING_PROGRESS_PRODUCERS); 0: no progress, quiet partitions go idle")
    parser.add_argument("--model", default=str(model_dir(load_settings().data_dir)), help="a trained model folder")
    args = parser.parse_args()
    base = load_settings()
    work = Path(tempfile.mkdtemp(prefix="yujing-bench-"))
    city = City(CityConfig(residents=args.residents, days=args.days, seed=args.seed,
                           attempts_per_10k_per_day=args.attempts))
    tag = uuid.uuid4().hex[:8]
    settings = fresh(base, work / "data", tag)
    counts = stream_city(settings, city)
    signals = sum(v for k, v in counts.items() if k.startswith("signals."))
    results: dict[str, float] = {}
    costs: dict[str, object] = {}  # memory and changelog records and bytes per signal, per pipeline run
    if "raw" in args.only:
        results["raw aiokafka getmany"] = signals / asyncio.run(raw_consume(settings, signals))
    if "bare" in args.only:
        seconds, left = run_bare(settings, work / "bare.log")
        results["bare Faust agent (decode + forward)"] = left / seconds
    if "take" in args.only:
        # a group of its own on the same topics: the bare agent's group has read them already
        s = dataclasses.replace(settings, app_id=f"{settings.app_id}-take")
        seconds, left = run_bare(s, work / "take.log", args.take)
        results[f"bare Faust agent, take({args.take})"] = left / seconds
    for n in args.workers if "pipeline" in args.only else []:
        # the same city again, into topics of its own, produced once the workers are up
        s = fresh(base, work / f"data-w{n}", f"{tag}w{n}")
        shutil.copytree(args.model, model_dir(s.data_dir))
        run = run_pipeline(s, n, work, city.cfg)
        assert run["signals"] == signals
        results[f"pipeline, {n} worker(s)"] = signals / run["seconds"]  # type: ignore[operator]
        costs[f"pipeline, {n} worker(s)"] = {"seconds": round(run["seconds"], 1),  # type: ignore[arg-type]
                                              "producer_seconds": round(run["producer_seconds"], 1),  # type: ignore[arg-type]
                                              "worker_rss_mib": [round(r) for r in run["rss_mib"]],  # type: ignore[union-attr]
                                              # all threads of the workers, from the first signal to drained
                                              "worker_cpu_us_per_signal": round(
                                                  sum(run["cpu_seconds"]) / signals * 1e6, 1),  # type: ignore[arg-type]
                                              "changelogs": changelog_cost(s, signals)}
    if "latency" in args.only:
        for rate in args.rates:
            lat = latency_at(base, args.model, City(city.cfg), rate, work, args.progress_ms / 1000)
            print(json.dumps({"fed_signals_per_second": rate, "progress_ms": args.progress_ms, **lat}, indent=2),
                  flush=True)
            if (lat["signal_to_warning_seconds count"] or 0) < 200:
                print(f"only {lat['signal_to_warning_seconds count']:.0f} warnings timed: p99 needs 200 or more "
                      "(--attempts, --residents)", file=sys.stderr)
    bare = results.get("bare Faust agent (decode + forward)", float("nan"))
    raw = results.get("raw aiokafka getmany", float("nan"))
    print(json.dumps({"signals": signals, "records": sum(counts.values()), "signals_per_second": results,
                      "costs": costs, "work": str(work)}, indent=2))
    print(f"\n{'reader':<40}{'signals/s':>12}{'× bare Faust':>14}{'× raw getmany':>15}")
    for name, rate in results.items():
        print(f"{name:<40}{rate:>12,.0f}{rate / bare:>14.2f}{rate / raw:>15.4f}")


if __name__ == "__main__":
    main()
