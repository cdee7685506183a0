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
from deploy.credentials import make_compose_secrets

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
CONFIG_SOURCE = (DEPLOY / "config.py").read_text()


def subcommands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def known_setting(name: str) -> bool:
    """A variable deploy/config.py reads: by name, or a secret's `NAME_FILE`."""
    return f'"{name}"' in CONFIG_SOURCE or (name.endswith("_FILE") and f'_secret(env, "{name[:-5]}")' in CONFIG_SOURCE)


def test_compose_file_holds_together(tmp_path: Path) -> None:
    compose_dir = DEPLOY / "compose"
    doc = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    services, volumes, declared = doc["services"], set(doc.get("volumes", {})), doc.get("secrets", {})
    built = {s["image"] for s in services.values() if "build" in s}
    made = {p.name for p in make_compose_secrets(tmp_path / "secrets")}  # what `yujing stack secrets` makes
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        assert ":" in svc["image"].rsplit("/", 1)[-1] and ":latest" not in svc["image"], f"{name}: no version"
        assert svc.get("restart") == ("on-failure" if name == "topics" else "unless-stopped"), f"{name}: restart"
        for secret in svc.get("secrets", []):
            assert secret in declared and Path(declared[secret]["file"]).name in made, f"{name}: {secret}"
        if "/yujing:" in svc["image"]:
            assert svc["read_only"] and svc["cap_drop"] == ["ALL"], name
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


def test_dockerfile_copies_what_exists_and_runs_as_a_user() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    for line in lines:
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
    assert {"ConfigMap", "StatefulSet", "Deployment", "Service", "Job", "NetworkPolicy", "Ingress"} <= set(by_kind)
    for key in by_kind["ConfigMap"]["yujing-config"]["data"]:
        assert known_setting(key), f"{key} is not a setting deploy/config.py reads"
    workloads = list(by_kind["StatefulSet"].values()) + list(by_kind["Deployment"].values())
    for w in workloads + list(by_kind["Job"].values()):
        spec, template = w["spec"], w["spec"]["template"]
        labels = template["metadata"]["labels"]
        if w["kind"] != "Job":
            assert spec["selector"]["matchLabels"].items() <= labels.items(), w["metadata"]["name"]
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] and pod["runAsUser"] != 0 and pod["seccompProfile"]["type"] == "RuntimeDefault"
        volumes = {v["name"] for v in template["spec"].get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for c in template["spec"]["containers"]:
            assert c["args"][0] in subcommands(), c["args"]
            assert re.fullmatch(r"[\w.:-]+/yujing:\d+\.\d+\.\d+", c["image"]), c["image"]  # a registry, a version
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
            assert context["capabilities"]["drop"] == ["ALL"] and c["resources"]["limits"]["memory"], c["name"]
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe") if w["kind"] != "Job" else ():
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
    for ingress in by_kind["Ingress"].values():
        assert ingress["spec"]["tls"], "the console and the feed only over TLS"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] in by_kind["Service"]
        hosts = by_kind["ConfigMap"]["yujing-config"]["data"]["YUJING_ALLOWED_HOSTS"].split(",")
        console = [r["host"] for r in ingress["spec"]["rules"] if r["http"]["paths"][0]["path"] == "/console"]
        assert set(console) <= set(hosts), "the console's ingress host is one the workers answer"
    for svc in by_kind["Service"].values():
        selector = svc["spec"]["selector"].items()
        assert any(selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads), svc
