"""Routing as inline-config tables: labels in, the route out; and the config's validation."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dispatch.routing import RouteConfigError, load_routes, match_routes, parse_routes

CONFIG = """
version = "test-1"
stations = ["ST1", "ST2"]
[[route]]
name = "t1"
match = { tier = "T1" }
steps = [{ channel = "phone", within = 5 }, { channel = "visit", within = 60 }]
stop_payment = true
[[route]]
name = "st2-no-grid-workers"
match = { tier = "T2", station = "ST2" }
steps = [{ channel = "phone", within = 30 }]
[[route]]
name = "authority"
match = { tier = ["T2", "T3"], fraud_type = "impersonate_authority" }
steps = [{ channel = "phone", within = 60 }]
[[route]]
name = "t2"
match = { tier = "T2" }
steps = [{ channel = "phone", within = 60 }, { channel = "visit", within = 1440 }]
[[route]]
name = "t3"
match = { tier = "T3" }
steps = [{ channel = "sms", within = 1440 }, { channel = "phone", within = 2880 }]
"""


@pytest.mark.parametrize(("labels", "route", "channels"), [
    ({"tier": "T1"}, "t1", ["phone", "visit"]),
    ({"tier": "T1", "fraud_type": "impersonate_authority"}, "t1", ["phone", "visit"]),
    ({"tier": "T2", "station": "ST2", "fraud_type": "romance"}, "st2-no-grid-workers", ["phone"]),
    ({"tier": "T2", "station": "ST1", "fraud_type": "romance"}, "t2", ["phone", "visit"]),
    ({"tier": "T2", "fraud_type": "impersonate_authority"}, "authority", ["phone"]),
    ({"tier": "T3", "fraud_type": "impersonate_authority"}, "authority", ["phone"]),
    ({"tier": "T3", "fraud_type": "rebate_task", "grid": "G0012"}, "t3", ["sms", "phone"]),
])
def test_first_matching_route_wins(labels: dict[str, str], route: str, channels: list[str]) -> None:
    got = match_routes(parse_routes(CONFIG), labels)
    assert (got.name, [s.channel for s in got.steps]) == (route, channels)


@pytest.mark.parametrize(("change", "error"), [
    (('channel = "sms"', 'channel = "fax"'), "unknown channel 'fax'"),
    (('station = "ST2"', 'station = "ST9"'), "unknown station ['ST9']"),
    (('fraud_type = "impersonate_authority"', 'fraud_type = "pig_butchering"'), "unknown fraud type"),
    (('match = { tier = "T3" }', 'match = { tier = "T3", grid = "G1" }'), "no route catches every T3"),
    (('within = 2880', 'within = 60'), "deadlines must not decrease"),
    (('match = { tier = "T1" }', 'match = { tier = "T1", colour = "red" }'), "unknown label 'colour'"),
    (("[[route]]", "[[route]"), "not valid TOML"),
])
def test_bad_config_is_a_clear_error(change: tuple[str, str], error: str) -> None:
    with pytest.raises(RouteConfigError, match=re.escape(error)):
        parse_routes(CONFIG.replace(*change, 1))


def test_the_shipped_config_is_valid_and_routes_every_tier() -> None:
    config = load_routes()
    for tier in ("T1", "T2", "T3"):
        assert match_routes(config, {"tier": tier}).steps


def test_route_test_answers_from_config_alone() -> None:
    res = subprocess.run([sys.executable, "-m", "deploy.cli", "route-test", "tier=T2", "grid=G0012",
                          "fraud_type=romance"], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "route: strong-signs (routes-2025.12-1)"
    assert "phone within    60 min" in res.stdout and "grid G0012" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "deploy.cli", "route-test", "tier"], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected label=value" in bad.stderr
