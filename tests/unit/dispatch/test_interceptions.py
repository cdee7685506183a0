"""Domain and number interceptions from case elements, and an RPZ zone a real resolver's checker accepts."""
from __future__ import annotations

import subprocess
from pathlib import Path

from dispatch.interceptions import active_domains, rpz_zone
from schemas.records import DomainInterception, Indicator
from streams.controls import interceptions_for

T = 1_764_547_200_000


def ind(kind: str, value: str, confidence: float = 0.9, action: str = "add", ts: int = T) -> Indicator:
    return Indicator(type=kind, value=value, action=action, fraud_type="fake_customer_service",  # type: ignore[arg-type]
                     confidence=confidence, source="case-1", ts=ts, expires_ts=ts + 10 if action == "add" else None)


def test_what_each_indicator_asks_for() -> None:
    (dom,) = interceptions_for(ind("domain", "refund-1.top"))
    assert (dom.domain, dom.expires_ts, dom.source) == ("refund-1.top", T + 10, "case-1")
    assert interceptions_for(ind("domain", "maybe.top", confidence=0.5)) == []
    assert [n.action for n in interceptions_for(ind("phone", "+8617000001111"))] == ["block"]
    assert [n.action for n in interceptions_for(ind("phone", "4000000001", confidence=0.5))] == ["flag"]
    (gone,) = interceptions_for(ind("phone", "+8617000001111", action="retract", ts=T + 5))
    assert gone.expires_ts == T + 5 and gone.reason.startswith("retracted")
    assert interceptions_for(ind("account", "6217000000000001")) == []


def test_latest_record_decides_and_expiry_unblocks() -> None:
    def rec(domain: str, ts: int, expires: int | None) -> DomainInterception:
        return DomainInterception(domain=domain, fraud_type="romance", reason="r", source="s", ts=ts, expires_ts=expires)

    records = [rec("a.top", T, None), rec("b.top", T, T + 100), rec("c.top", T, None), rec("c.top", T + 50, T + 50)]
    assert active_domains(records, T + 60) == ["a.top", "b.top"]
    assert active_domains(records, T + 200) == ["a.top"]


def test_zone_loads_in_named_checkzone(tmp_path: Path) -> None:
    zone = tmp_path / "rpz.zone"
    zone.write_text(rpz_zone(["refund-1.top", "xn--pple-43d.com"], serial=1))
    res = subprocess.run(["named-checkzone", "rpz.yujing.local", str(zone)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout and "*.refund-1.top IN CNAME ." in zone.read_text()
