"""The compose file, the Dockerfile and the Kubernetes manifests hold together (no container engine runs here):
references resolve, probes hit declared ports, commands are real subcommands, settings are real settings,
published ports stay on 127.0.0.1, and the compose network's Prometheus config passes promtool."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
CONFIG_SOURCE = (DEPLOY / "config.py").read_text()


def subcommands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def known_setting(name: str) -> bool:
    return f'"{name}"' in CONFIG_SOURCE


def test_compose_file_holds_together(tmp_path: Path) -> None:
    compose_dir = DEPLOY / "compose"
    doc = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    services, volumes = doc["services"], set(doc.get("volumes", {}))
    built = {s["image"] for s in services.values() if "build" in s}
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if svc.get("image", "").startswith("yujing"):
            assert svc["image"] in built, f"{name}: nothing builds {svc['image']}"
            assert svc["command"][0] in subcommands(), f"{name}: {svc['command'][0]} is not a yujing subcommand"
            for key in svc.get("environment", {}):
                assert known_setting(key), f"{name}: {key} is not a setting deploy/config.py reads"
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps:
            assert dep in services, f"{name} depends on unknown {dep}"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host's loopback"
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        if "build" in svc:
            dockerfile = compose_dir / svc["build"]["context"] / svc["build"]["dockerfile"]
            assert dockerfile.exists()
    # the Prometheus of the compose network, with the shared rules beside it as mounted
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run the tests through scripts/test.sh")
    shutil.copy(compose_dir / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(DEPLOY / "prometheus" / "rules", tmp_path / "rules")
    done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_copies_what_exists() -> None:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_kubernetes_manifests_hold_together() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "yujing.yaml").read_text()) if d]
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d) and d["metadata"]["name"], d
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"])
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert {"ConfigMap", "StatefulSet", "Deployment", "Service"} <= set(by_kind)
    for key in by_kind["ConfigMap"]["yujing-config"]["data"]:
        assert known_setting(key), f"{key} is not a setting deploy/config.py reads"
    workloads = list(by_kind["StatefulSet"].values()) + list(by_kind["Deployment"].values())
    for w in workloads:
        spec, template = w["spec"], w["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), w["metadata"]["name"]
        volumes = {v["name"] for v in template["spec"].get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for c in template["spec"]["containers"]:
            assert c["args"][0] in subcommands(), c["args"]
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] in ports, f"{c['name']} {probe} on an undeclared port"
            for ref in c.get("envFrom", []):
                assert ref["configMapRef"]["name"] in by_kind["ConfigMap"]
            for env in c.get("env", []):
                assert known_setting(env["name"]), env["name"]
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, f"{c['name']} mounts undeclared {m['name']}"
    for sts in by_kind["StatefulSet"].values():
        assert sts["spec"]["serviceName"] in by_kind["Service"]
        assert sts["spec"]["volumeClaimTemplates"], "workers keep their tables on their own volume"
    for svc in by_kind["Service"].values():
        selector = svc["spec"]["selector"].items()
        assert any(selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads), svc
