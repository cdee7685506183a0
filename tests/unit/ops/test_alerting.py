"""Alerts reach someone: the Alertmanager config passes `amtool check-config`, its routes send each kind of alert
to the receiver the table says (`amtool config routes test`), every alert has a runbook that exists, every
scraped job is watched by an `up == 0` alert, and Prometheus (local and compose) sends its alerts there."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "yujing.rules.yml"


def amtool(*args: str) -> str:
    exe = shutil.which("amtool")
    if exe is None:
        pytest.fail("amtool is missing: run the tests through scripts/test.sh (it installs Debian's "
                    "prometheus-alertmanager)")
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alerts() -> list[dict]:
    rules = yaml.safe_load(RULES.read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_amtool_checks_the_config() -> None:
    out = amtool("check-config", str(CONFIG))
    assert "SUCCESS" in out and "3 receivers" in out, out


@pytest.mark.parametrize(("labels", "receivers"), [
    (["alertname=YujingConsumerLagGrowing", "severity=page"], "ops-center-pager"),
    (["alertname=YujingSlaBreaches", "severity=page", "station=ST001"], "station-duty,ops-center-pager"),
    (["alertname=YujingDeadLetterSpike", "severity=ticket"], "ops-center-tickets"),
    (["alertname=YujingJobDown", "severity=page", "job=yujing-sms-gateway"], "ops-center-pager"),
    (["alertname=SomethingElse"], "ops-center-tickets"),  # nothing is dropped: the root receiver
])
def test_routes(labels: list[str], receivers: str) -> None:
    assert amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels).strip() == receivers


def test_every_alert_routes_by_a_severity_the_routes_know() -> None:
    severities = {a["labels"]["severity"] for a in alerts()}
    assert severities == {"page", "ticket"}


def test_every_alert_has_a_runbook() -> None:
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        assert url == f"docs/runbooks/{alert['alert']}.md", alert["alert"]
        text = (ROOT / url).read_text()
        assert text.startswith(f"# {alert['alert']}"), url
    linked = {f"{a['alert']}.md" for a in alerts()}
    assert {p.name for p in (ROOT / "docs" / "runbooks").glob("Yujing*.md")} == linked  # none without an alert


def test_every_scraped_job_is_watched_and_prometheus_sends_to_alertmanager() -> None:
    down = next(a for a in alerts() if a["alert"] == "YujingJobDown")
    watched = re.search(r'job=~"([^"]+)"', down["expr"]).group(1)  # type: ignore[union-attr]
    for path, target in ((ROOT / "deploy" / "prometheus" / "prometheus.yml", "127.0.0.1:9093"),
                         (ROOT / "deploy" / "compose" / "prometheus.yml", "alertmanager:9093")):
        config = yaml.safe_load(path.read_text())
        jobs = [j["job_name"] for j in config["scrape_configs"]]
        assert jobs and all(re.fullmatch(watched, j) for j in jobs), (path, jobs)
        targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]
                   for t in sc["targets"]]
        assert targets == [target], path
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "docker-compose.yml").read_text())
    assert compose["services"]["alertmanager"]["image"].startswith("prom/alertmanager:v")
