"""Prometheus config and rules pass promtool (check and unit tests); the Grafana dashboard is current, laid out,
its every query valid PromQL over metrics the code really exports."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from deploy.grafana.build_dashboard import OUT, render
from deploy.prometheus.build_rules import RULES as RULES_DIR
from deploy.prometheus.build_rules import build as build_rules
from dispatch.metrics import feed_metrics, sms_metrics
from ops.metrics import ConsumerLag, PipelineMetrics

PROM = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def promtool(*args: str, cwd: Path = PROM) -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: run the tests through scripts/test.sh (it installs Debian's prometheus)")
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exported_names() -> set[str]:
    """Every sample name the worker, the SMS adapter and the task feed export, and the recording rules."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    feed_metrics(registry)
    sms_metrics(registry)
    registry.register(ConsumerLag(dict, dict, str))
    names = {f.name + s for f in registry.collect() for s in SUFFIXES.get(f.type, [""])}
    rules = yaml.safe_load((PROM / "rules" / "yujing.rules.yml").read_text())
    return names | {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_promtool_checks_config_and_rules() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in promtool("check", "rules", "rules/yujing.rules.yml", "rules/en/yujing.rules.yml")


def test_promtool_rule_unit_tests_in_both_languages() -> None:
    assert "SUCCESS" in promtool("test", "rules", "yujing.rules.test.yml", cwd=PROM / "rules")  # Chinese: deployed
    assert "SUCCESS" in promtool("test", "rules", "yujing.rules.test.yml", cwd=PROM / "rules" / "en")


def test_the_deployed_rules_are_the_english_ones_in_the_operators_language() -> None:
    built = build_rules()
    for name, text in built.items():
        assert (RULES_DIR / name).read_text(encoding="utf-8") == text, "run python -m deploy.prometheus.build_rules"
    assert "消费积压" in built["yujing.rules.yml"]
    assert "signals.telecom 消费积压 5000 条" in built["yujing.rules.test.yml"]
    english = build_rules("en")
    assert all(english[name] == (RULES_DIR / "en" / name).read_text(encoding="utf-8") for name in english)


def test_rules_use_only_exported_metrics() -> None:
    rules = yaml.safe_load((PROM / "rules" / "yujing.rules.yml").read_text())
    used = {m for g in rules["groups"] for r in g["rules"] for m in re.findall(r"\byujing[_:][a-z0-9_:]+", r["expr"])}
    assert used and used <= exported_names(), used - exported_names()


def test_dashboard_is_current_laid_out_and_queries_are_valid(tmp_path: Path) -> None:
    assert OUT.read_text() == render(), "run .venv/bin/python -m deploy.grafana.build_dashboard"
    board = json.loads(OUT.read_text())
    assert board["uid"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0 and p["targets"], p["title"]
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\byujing[_:][a-z0-9_:]+", e)}
    assert used <= exported_names(), used - exported_names()
    # every query is PromQL that Prometheus itself parses: as recording rules through promtool
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                       for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
