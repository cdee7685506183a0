"""A simulated city through running workers, and what came out: shared by the scale-out test and bench."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import msgspec
from kafka.errors import KafkaError

from deploy.city_stream import stream_city
from deploy.config import Settings
from deploy.workers import WorkerProcess, start_workers
from schemas.records import is_progress
from scorers.lab.city import City, CityConfig
from streams.kafka_io import group_lag, group_lags, pipeline_groups, read_table, read_to_end
from streams.person_state import FACT_KINDS, StatePolicy, decode_state, fact_order
from streams.watermarks import Frontier

Outputs = dict[str, set]


@dataclass
class Progress:
    """A replay's log: the group's uncommitted records per partition each second, the faults, what was fed.

    It shows what a drain waits for: after each fault, how long every partition took to catch up.
    """

    settings: Settings
    log_path: Path
    every_s: float = 1.0
    fed: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _log: TextIO | None = None

    def now(self) -> float:
        """Seconds since the replay began."""
        return time.monotonic() - self._t0

    def mark(self, what: str) -> None:
        """Note a moment (a fault, a restart) in the log."""
        at = self.now()
        self.marks.append((at, what))
        self._write(f"{at:8.1f} mark {what}")

    def start(self) -> None:
        """Sample on a thread until `stop`."""
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End sampling and close the log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._log is not None:
            self._log.close()

    def _write(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def _run(self) -> None:
        prefix = len(self.settings.topic_prefix)
        while not self._stop.wait(self.every_s):
            try:
                lags = {f"{tp.topic[prefix:]}/{tp.partition}": n
                        for tp, n in group_lags(self.settings, pipeline_groups(self.settings)).items()}
            except KafkaError:  # the broker restarting: a gap in the log
                continue
            at = self.now()
            self.samples.append((at, lags))
            busy = " ".join(f"{k}={n}" for k, n in sorted(lags.items()) if n)
            self._write(f"{at:8.1f} lag {sum(lags.values())} {busy}")

    def catch_up_s(self, is_fault: Callable[[str], bool]) -> list[tuple[str, float, dict[str, float | None]]]:
        """For each fault (a mark `is_fault` names): its time, and for every partition behind after it, the
        seconds until it had no lag (None: still behind at the next fault, or at the end)."""
        faults = [(at, what) for at, what in self.marks if is_fault(what)]
        out = []
        for i, (at, what) in enumerate(faults):
            until = faults[i + 1][0] if i + 1 < len(faults) else float("inf")
            behind: dict[str, float | None] = {}
            for t, lags in self.samples:
                if not at <= t < until:
                    continue
                for part, n in lags.items():
                    if n and part not in behind:
                        behind[part] = None
                    elif not n and part in behind and behind[part] is None:
                        behind[part] = round(t - at, 1)
            out.append((what, round(at, 1), behind))
        return out


def why_not_drained(settings: Settings) -> str:
    """What holds a pipeline that does not drain: lag per partition, decisions waiting, and busy channels."""
    lags = {f"{tp.topic}/{tp.partition}": n for tp, n in group_lags(settings, pipeline_groups(settings)).items() if n}
    from deploy.app.partitioned import chunk_items  # deploy.app imports faust: only when a drain has failed

    pending = sorted(k for key, raw in read_table(settings, "pending").items() for k, _ in chunk_items(key, raw))
    busy = {}
    for key, raw in (read_table(settings, "marks") | read_table(settings, "value-marks")).items():
        frontier = msgspec.msgpack.decode(raw, type=Frontier)
        busy[key.decode()] = {c: ts for c, (ts, idle) in frontier.seen.items() if not idle}
    return (f"uncommitted {lags}; {len(pending)} decisions waiting (first {pending[:3]}); "
            f"busy channels per partition {busy}")


def wait_drained(settings: Settings, workers: list[WorkerProcess], timeout: float = 600.0) -> None:
    """Until the group has committed everything three polls running and no decision waits for the watermark."""
    deadline, calm = time.monotonic() + timeout, 0
    while calm < 3:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pipeline did not drain in {timeout:.0f} s: {why_not_drained(settings)}")
        if not all(w.running for w in workers):
            raise RuntimeError(next(w for w in workers if not w.running).log_tail())
        try:
            drained = group_lag(settings, pipeline_groups(settings)) == 0
            calm = calm + 1 if drained and not read_table(settings, "pending") else 0
        except KafkaError:  # the broker restarting (a fault test): not calm yet
            calm = 0
        time.sleep(1)


def collect_outputs(settings: Settings) -> Outputs:
    """The ids of every decision, warning, SMS, call and visit task, stop-payment, account control and trigger
    sent, and the person table."""
    def docs(topic: str) -> list[dict]:
        return [msgspec.json.decode(m.value) for m in read_to_end(settings, settings.topic(topic))
                if not is_progress(m.key)]

    return {
        "decisions": {(d["decision_id"], d["tier"], d["rose"]) for d in docs("yujing.decisions")},
        "warnings": {(w["warning_id"], w["subject_id"], w["tier"], w["fraud_type"]) for w in docs("warnings")},
        "sms": {t["message_id"] for t in docs("dispatch.sms")},
        "tasks": {t["task_id"] for t in docs("dispatch.phone") + docs("dispatch.visit")},
        "stop_payments": {p["transfer_id"] for p in docs("interception.payment")},
        "controls": {c["account"] for c in docs("interception.account")},
        # what a trigger is about (its id names the contact, which depends on arrival order: `person_table`)
        "triggers": {(t["person"], t["cause"], t["mode"], t["value_key"], t["ts"]) for t in docs("yujing.triggers")},
        "persons": person_table(settings),
    }


def person_table(settings: Settings) -> set[tuple[bytes, bytes]]:
    """Every person's state in the `persons` table, in the form that does not depend on arrival order.

    Facts of the same time may come in either order from different partitions. How many hits one case element
    gives depends on whether the contacts reached the index before the element (one reverse hit, from the
    contact the index kept) or after it (one per contact): the scorer counts each element once
    (`scorers/features.py`), so a hit is compared without the contact that made it. The note of which event
    made each decision (it serves re-sending after a crash) may name either of two pieces of evidence that
    decide under the same id. Of each kind of fact, only the latest `max_facts` are compared: the ones any
    decision still to take can see (`as_of`); how many older ones a state still holds depends on how far the
    decisions were behind when it was last trimmed (`_trim`), and so does the cap's mark (`capped`). All else
    must be equal run to run."""
    keep = StatePolicy.max_facts
    table = set()
    for key, raw in read_table(settings, "persons").items():
        state = decode_state(raw)
        for kind in FACT_KINDS:
            setattr(state, kind, sorted(getattr(state, kind), key=fact_order)[-keep:])
        state.capped = {}
        if state.risk is not None:
            state.risk.decided = []
            state.risk.stopped = sorted(state.risk.stopped)
        hits = (msgspec.structs.replace(h, contact_ts=0, event_id="") for h in state.hits)
        state.hits = list({msgspec.msgpack.encode(h): h for h in hits}.values())
        for facts in (state.calls, state.web, state.payments, state.hits):
            facts.sort(key=msgspec.msgpack.encode)
        state.known = dict(sorted(state.known.items()))
        table.add((key, msgspec.msgpack.encode(state)))
    return table


def replay_city(settings: Settings, city: CityConfig, workers: int, logs: Path, speed: float = 0.0,
                during: Callable[[list[WorkerProcess]], None] | None = None, drain_timeout: float = 600.0,
                progress: Progress | None = None) -> Outputs:
    """Start the workers, stream the city (the registry first), wait until drained; what came out.

    `during(workers)`, when given, runs while the city streams (fault injection: it may kill and restart them).
    A pipeline not drained `drain_timeout` seconds after that raises, saying what holds it. `progress`, when
    given, samples the lag per partition from the start of the stream to the end of the drain.
    """
    procs = start_workers(settings, workers, logs)
    if progress is not None:
        progress.start()
    try:
        failed: list[BaseException] = []

        def feed() -> None:
            try:
                fed = stream_city(settings, City(city), speed=speed, registry_first=True)
                if progress is not None:
                    progress.fed.update(fed)
                    progress.mark(f"fed {sum(fed.values())} records")
            except BaseException as exc:  # reported by the caller's thread below
                failed.append(exc)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        if during is not None:
            during(procs)
        feeder.join()
        if failed:
            raise failed[0]
        wait_drained(settings, [p for p in procs if p.running], drain_timeout)
        if progress is not None:
            progress.mark("drained")
    finally:
        if progress is not None:
            progress.stop()
        for p in procs:
            p.stop()
    return collect_outputs(settings)


def differences(one: Outputs, other: Outputs) -> dict[str, tuple[int, int]]:
    """Per kind of output: (only in the first, only in the second), for the kinds that differ."""
    return {k: (len(one[k] - other[k]), len(other[k] - one[k])) for k in one if one[k] != other[k]}
