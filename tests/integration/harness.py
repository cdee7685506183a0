"""Helpers for integration tests on the real broker: isolated settings and free ports."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import msgspec

from deploy.config import Settings
from deploy.topics import create_topics
from schemas.internal import PersonEvent, ValueMessage
from streams.envelope import unpack
from streams.kafka_io import read_to_end
from streams.person_state import FACT_KINDS, decode_state

# Below the kernel's ephemeral range (32768 on): a port the kernel picks for port 0 is one it also gives to
# outgoing connections, which took a worker's web port between the pick and the worker's bind.
PORTS = range(20000, 32000)
STACK_PORTS = {16379, 19092, 19093, 26379, 29092, 29093}


def free_port(span: int = 4) -> int:
    """A TCP port on 127.0.0.1, below the ephemeral range, that nothing listens on right now, nor on the `span - 1`
    ports after it (worker `i` of a group serves on the web port + `i`)."""
    rng = random.Random()
    while True:
        port = rng.randrange(PORTS.start, PORTS.stop - span)
        if STACK_PORTS.isdisjoint(range(port, port + span)) and all(_bindable(p) for p in range(port, port + span)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_http(url: str, timeout: float = 20) -> None:
    """Wait until an HTTP server answers `url` (any 2xx); fail after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def isolated_settings(base: Settings, data_dir: Path, model: Path, partitions: int = 2) -> Settings:
    """Settings with topic names, consumer group and data folder of their own (with a copy of `model`),
    and the topics created."""
    tag = uuid.uuid4().hex[:10]
    settings = dataclasses.replace(
        base, topic_prefix=f"t{tag}.", app_id=f"yujing-t{tag}", data_dir=data_dir,
        signal_partitions=partitions, partitions=partitions, web_port=free_port(), feed_port=free_port(),
        kafka_external=True, redis_external=True,
        sms_key_id="yujing", sms_secret=f"s{tag[:7]}", sms_app_id="1400000001",  # the test gateway's, per test
    )
    create_topics(settings)
    shutil.copytree(model, data_dir / "model")
    return settings


def http_json(url: str, body: dict | None = None) -> dict:
    """GET `url` (or POST `body` as JSON) and the JSON answer: the test gateway's admin API."""
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@contextmanager
def cli_process(settings: Settings, logs: Path, name: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`yujing ARGS…` running on the test's settings (its log in `logs/NAME.log`), stopped on the way out."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", *args], env=env,
                            stdout=open(logs / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


class Feed:
    """A client of the feed API, as a grid worker's app would be."""

    def __init__(self, base: str, token: str | None) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: bytes | dict | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.token is not None:
            h["Authorization"] = f"Bearer {self.token}"
        if method == "POST" and headers is None:
            h |= {"X-Request-Id": uuid.uuid4().hex, "X-Request-Time": str(int(time.time() * 1000))}
        req = urllib.request.Request(self.base + path, data=data if method == "POST" else None, headers=h,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode(errors="replace")}

    def tasks(self) -> list[dict]:
        status, body = self.call("GET", "/v1/tasks")
        assert status == 200, body
        return body["tasks"]


def feed_token(env: dict[str, str], *args: str) -> str:
    """A task-feed token issued by `yujing feed-token ARGS…` in `env`."""
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "feed-token", *args], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def state_differences(reference: set[tuple[bytes, bytes]], run: set[tuple[bytes, bytes]]) -> str:
    """For the persons whose state differs (`deploy.replay.person_table`), which fields differ and how (a list
    field by the items only one side holds)."""
    ref, got = dict(reference), dict(run)
    lines = []
    for key in sorted(set(ref) | set(got)):
        if ref.get(key) == got.get(key):
            continue
        if key not in ref or key not in got:
            lines.append(f"{key!r}: only in the {'run' if key in got else 'reference'}")
            continue
        one, other = decode_state(ref[key]), decode_state(got[key])
        fields = [_field_difference(f, getattr(one, f), getattr(other, f))
                  for f in one.__struct_fields__ if getattr(one, f) != getattr(other, f)]
        lines.append(f"{key!r}: " + "; ".join(fields))
    return "\n".join(lines)


def _field_difference(name: str, reference: object, run: object) -> str:
    if isinstance(reference, list) and isinstance(run, list):
        only_ref = [x for x in reference if x not in run]
        only_run = [x for x in run if x not in reference]
        return f"{name}: only in the reference {only_ref!r}, only in the run {only_run!r}"
    return f"{name}: reference {reference!r} run {run!r}"


def failure_report(reference: dict[str, set], run: dict[str, set], diff: dict[str, tuple[int, int]],
                   limit: int = 5) -> str:
    """What a fault test found different: the counts, a few of the outputs only one side has, the persons."""
    lines = [f"differences (only in the reference, only in the run): {diff}"]
    for kind in diff:
        if kind == "persons":
            continue
        for side, items in (("reference", reference[kind] - run[kind]), ("run", run[kind] - reference[kind])):
            for item in sorted(items, key=repr)[:limit]:
                lines.append(f"{kind} only in the {side}: {item!r}"[:400])
    lines.append(state_differences(reference["persons"], run["persons"])[:8000])
    return "\n".join(lines)


def trace_lost_facts(settings: Settings, reference: set[tuple[bytes, bytes]], run: set[tuple[bytes, bytes]],
                     logs: Path | None = None, limit: int = 12) -> str:
    """For facts a person's state holds in the reference and not in the run: how far down the chain they got in
    the run (the person event in `yujing.events`; for a hit, its contact and the indicator in `yujing.contacts`),
    and the worker logs' warnings. What a failing fault test prints, so that a rare loss names where it was lost."""
    ref, got = dict(reference), dict(run)
    lost: list[tuple[str, str, object]] = []
    for key in sorted(set(ref) & set(got)):
        one, other = decode_state(ref[key]), decode_state(got[key])
        for kind in FACT_KINDS:
            theirs = getattr(other, kind)
            lost += [(key.decode(), kind, f) for f in getattr(one, kind) if f not in theirs]
    if not lost:
        return "no fact of the reference is missing from the run's persons"
    events = [(m.partition, m.offset, m.timestamp, msgspec.json.decode(m.value, type=PersonEvent))
              for m in unpack("yujing.events", read_to_end(settings, settings.topic("yujing.events")))]
    values = [(m.partition, m.offset, m.timestamp, msgspec.json.decode(m.value, type=ValueMessage))
              for m in unpack("yujing.contacts", read_to_end(settings, settings.topic("yujing.contacts")))]
    lines = []
    for person, kind, fact in lost[:limit]:
        event_id = getattr(fact, "event_id", "")
        lines.append(f"lost {person} {kind}: {fact!r}"[:500])
        if kind == "hits":
            # compared without the contact that made it (`person_table`): every hit and contact of the person
            # with the value counts
            vk = getattr(fact, "value_key")
            hits = [(p, o, ts) for p, o, ts, pe in events if pe.person == person and pe.hit is not None
                    and pe.hit.value_key == vk]
            contacts = [(p, o, ts) for p, o, ts, vm in values if vm.contact is not None and vm.contact.value_key == vk
                        and vm.contact.person == person]
            indicators = [(p, o, ts, vm.indicator.action, vm.indicator.ts) for p, o, ts, vm in values
                          if vm.indicator is not None and vm.value_key == vk]
            lines.append(f"  in yujing.events as a hit (partition, offset, kafka ts): {hits}")
            lines.append(f"  its contact in yujing.contacts: {contacts}; the indicator there: {indicators}")
        else:
            signals = [(p, o, ts) for p, o, ts, pe in events if pe.person == person and any(
                rec is not None and rec.event_id == event_id for rec in (pe.telecom, pe.domain, pe.payment))]
            lines.append(f"  in yujing.events (partition, offset, kafka ts): {signals}")
    if logs is not None:
        for log_file in sorted(logs.glob("*.log")):
            warnings = [ln for ln in log_file.read_text(errors="replace").splitlines()
                        if ("WARNING" in ln or "ERROR" in ln) and "producer buffer full" not in ln]
            lines.append(f"{log_file.name}: {len(warnings)} warnings or errors")
            lines += [f"  {ln[:300]}" for ln in warnings[-15:]]
    return "\n".join(lines)
