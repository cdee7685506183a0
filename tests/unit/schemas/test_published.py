"""The published contract: a valid schema for every topic, and every record the simulator and the pipeline make
fits its topic's schema (the records as they go to Kafka, JSON)."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from jsonschema import Draft202012Validator

from dispatch.routing import load_routes
from dispatch.stage import Dispatcher
from schemas.deadletter import dead_letter
from schemas.published import TOPICS, asyncapi, json_schema, write_published
from schemas.records import Outcome, encode
from schemas.topics import CONTRACT_TOPICS
from scorers.ages import Ages
from scorers.decide import Decider
from scorers.lab.city import City, CityConfig
from scorers.model import load
from streams.local import LocalPipeline
from tests.unit.dispatch.test_stage import MemoryCooldown, MemoryEscalation

VALIDATORS = {topic: Draft202012Validator(json_schema(topic)) for topic in TOPICS}


def off_contract(topic: str, record: msgspec.Struct) -> list[str]:
    """Why a record, as sent, does not fit its topic's published schema (empty: it fits)."""
    return [e.message for e in VALIDATORS[topic].iter_errors(json.loads(encode(record)))]


def test_every_topic_is_published_with_a_valid_schema_and_the_asyncapi_document_resolves(tmp_path: Path) -> None:
    assert set(CONTRACT_TOPICS) <= set(TOPICS)
    for topic in TOPICS:
        Draft202012Validator.check_schema(json_schema(topic))
    doc = asyncapi("0.1.0")
    assert set(doc["channels"]) == set(TOPICS)
    refs = {m.split("/")[-1] for m in _refs(doc["channels"])}
    assert refs and refs <= set(doc["components"]["schemas"])
    written = write_published(tmp_path, "0.1.0")
    assert {p.name for p in written} == {f"{t}.schema.json" for t in TOPICS} | {"asyncapi.json"}
    assert json.loads((tmp_path / "warnings.schema.json").read_text()) == json_schema("warnings")
    bad = {"event_id": "e", "ts": "yesterday", "kind": "call", "direction": "in", "subscriber": "+8613800000001",
           "counterpart": "95555", "duration_s": 10}
    assert list(VALIDATORS["signals.telecom"].iter_errors(bad))  # a schema that refuses nothing proves nothing


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_what_the_simulator_and_the_pipeline_make_fits_the_published_schemas(small_model: Path) -> None:
    """A small city through the pipeline's stages in one process, its decisions through dispatch: every input,
    every output, a dead letter and a receipt fit their topics' schemas."""
    p = LocalPipeline()
    model = load(small_model)
    p.processor.on_person = Decider(model, model.tier_policy(), Ages(p.processor.lookup))
    seen: Counter[str] = Counter()
    misfits: list[tuple[str, list[str]]] = []

    def check(topic: str, record: msgspec.Struct) -> None:
        seen[topic] += 1
        if errors := off_contract(topic, record):
            misfits.append((topic, errors[:2]))

    for topic, record in City(CityConfig(residents=300, days=2, seed=5, attempts_per_10k_per_day=400)).records():
        check(topic, record)
        p.feed(topic, record)
    p.finish()
    routes = load_routes()
    dispatcher = Dispatcher(routes, MemoryCooldown(routes.cooldown_ms), p.processor.lookup,  # type: ignore[arg-type]
                            MemoryEscalation())  # type: ignore[arg-type]
    for topic, outputs in list(p.sent.items()):
        for out in outputs:
            if topic in TOPICS:
                check(topic, out.value)
            if topic == "yujing.decisions":
                for sent in asyncio.run(dispatcher.handle(out.value)):  # type: ignore[arg-type]
                    check(sent.topic, sent.value)
    check("deadletter", dead_letter("signals.telecom", 0, 7, b"+861", b"\xff{", "not UTF-8"))
    check("outcomes", Outcome(warning_id="w", channel="sms", outcome="sms_delivered", message_id="m",
                              ts=1_764_547_200_000))
    assert not misfits, misfits[:5]
    made = {"signals.telecom", "signals.payment", "signals.domain", "registry.subjects", "intel.indicators",
            "yujing.decisions", "yujing.triggers", "warnings", "dispatch.sms", "dispatch.phone", "dispatch.visit",
            "interception.payment"}
    assert made <= {t for t, n in seen.items() if n}, seen


ROOT = Path(__file__).resolve().parents[3]


def test_the_repos_contract_is_the_shared_one_then_yujings_extensions_naming_every_topic() -> None:
    ours = (ROOT / "CONTRACT.md").read_text()
    assert all(f"`{topic}`" in ours for topic in TOPICS)
    shared = ROOT.parent / "shared" / "CONTRACT.md"
    if not shared.exists():
        pytest.skip(f"no shared contract at {shared} to compare with (a clone outside the project's folder)")
    base, extensions = ours.split("\n## Extensions (yujing)\n", 1)
    assert base.rstrip("\n") == shared.read_text().rstrip("\n")
    assert extensions.strip()
