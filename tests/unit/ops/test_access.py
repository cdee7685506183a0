"""Console access: roles reach what they should until they expire, and only the console's own names are served."""
from __future__ import annotations

import pytest

from ops.access import Grant, host_allowed, may

NOW = 1_764_547_200_000


@pytest.mark.parametrize("role, need, expires, allowed", [
    ("viewer", "viewer", NOW + 1, True),
    ("viewer", "analyst", NOW + 1, False),
    ("analyst", "viewer", NOW + 1, True),
    ("analyst", "analyst", NOW + 1, True),
    ("analyst", "analyst", NOW, False),  # expired at NOW
    ("analyst", "viewer", NOW - 1, False),
])
def test_a_role_reaches_what_it_should_until_it_expires(role: str, need: str, expires: int, allowed: bool) -> None:
    assert may(Grant("ops-1", role, expires), need, NOW) is allowed  # type: ignore[arg-type]


def test_no_grant_reaches_anything() -> None:
    assert not may(None, "viewer", NOW)


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:6066", True), ("localhost", True), ("LOCALHOST:80", True), ("[::1]:6066", True),
    ("console.fzzx.example:443", True), ("rebound.example:6066", False), ("", False), (":6066", False),
    ("127.0.0.1.nip.io:6066", False), ("[::2]:6066", False), ("localhost:6066, evil", False), ("[::1]x", False),
])
def test_only_the_names_the_console_is_served_under_pass(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["127.0.0.1", "localhost", "::1", "console.fzzx.example"]) is allowed

