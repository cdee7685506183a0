"""The domains blocked at a moment, and an RPZ zone a real resolver's checker accepts."""
from __future__ import annotations

import subprocess
from pathlib import Path

from dispatch.interceptions import active_domains, rpz_zone
from schemas.normalize import normalise_domain
from schemas.records import DomainInterception

T = 1_764_547_200_000
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "top"])  # 253 characters: the longest valid name


def test_latest_record_decides_and_expiry_unblocks() -> None:
    def rec(domain: str, ts: int, expires: int | None) -> DomainInterception:
        return DomainInterception(domain=domain, fraud_type="romance", reason="r", source="s", ts=ts, expires_ts=expires)

    records = [rec("a.top", T, None), rec("b.top", T, T + 100), rec("c.top", T, None), rec("c.top", T + 50, T + 50)]
    assert active_domains(records, T + 60) == ["a.top", "b.top"]
    assert active_domains(records, T + 200) == ["a.top"]


def test_zone_loads_in_named_checkzone(tmp_path: Path) -> None:
    zone = tmp_path / "rpz.zone"
    assert normalise_domain(LONGEST) == LONGEST
    text, skipped = rpz_zone(["refund-1.top", "xn--pple-43d.com", LONGEST], serial=1)
    zone.write_text(text)
    res = subprocess.run(["named-checkzone", "rpz.yujing.local", str(zone)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout and "*.refund-1.top IN CNAME ." in zone.read_text()
    assert skipped == [LONGEST] and LONGEST not in text  # a legal name, too long under the origin


def test_the_longest_legal_name_would_make_the_zone_unloadable(tmp_path: Path) -> None:
    """Why the zone leaves such names out: written in, named refuses the whole zone."""
    zone = tmp_path / "rpz.zone"
    text, _ = rpz_zone(["refund-1.top"], serial=1)
    zone.write_text(text + f"{LONGEST} IN CNAME .\n")
    res = subprocess.run(["named-checkzone", "rpz.yujing.local", str(zone)], capture_output=True, text=True)
    assert res.returncode != 0
