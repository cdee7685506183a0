"""Blocking requests from case elements: domains (and a DNS RPZ zone of them) and numbers, as pure functions."""
from __future__ import annotations

import time

from schemas.records import DomainInterception, Indicator, NumberInterception

BLOCK_CONFIDENCE = 0.8  # below this a number is flagged for the operators' review, not blocked


def interceptions_for(indicator: Indicator) -> list[DomainInterception | NumberInterception]:
    """What an indicator change asks of ISPs and operators; a retraction ends the block (expires now)."""
    retract = indicator.action == "retract"
    expires = indicator.ts if retract else indicator.expires_ts
    why = (f"retracted: {indicator.source}" if retract
           else f"named in {indicator.source} ({indicator.fraud_type}, confidence {indicator.confidence:.2f})")
    if indicator.type in ("domain", "url"):
        if not retract and indicator.confidence < BLOCK_CONFIDENCE:
            return []
        return [DomainInterception(domain=indicator.value, fraud_type=indicator.fraud_type, reason=why,
                                   source=indicator.source, ts=indicator.ts, expires_ts=expires)]
    if indicator.type == "phone":
        action = "block" if indicator.confidence >= BLOCK_CONFIDENCE else "flag"
        return [NumberInterception(number=indicator.value, action=action, fraud_type=indicator.fraud_type,  # type: ignore[arg-type]
                                   reason=why, source=indicator.source, ts=indicator.ts, expires_ts=expires)]
    return []


def active_domains(records: list[DomainInterception], now_ms: int) -> list[str]:
    """Domains blocked at `now_ms`: the latest record per domain decides, an expired one unblocks."""
    latest: dict[str, DomainInterception] = {}
    for r in records:
        if r.domain not in latest or r.ts >= latest[r.domain].ts:
            latest[r.domain] = r
    return sorted(d for d, r in latest.items() if r.expires_ts is None or r.expires_ts > now_ms)


def rpz_zone(domains: list[str], origin: str = "rpz.yujing.local", serial: int | None = None) -> str:
    """A DNS RPZ zone that answers NXDOMAIN for each domain and its subdomains (`CNAME .`)."""
    serial = serial if serial is not None else int(time.time())
    lines = [f"$ORIGIN {origin}.", "$TTL 300",
             f"@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )", "@ IN NS localhost."]
    for d in domains:
        lines += [f"{d} IN CNAME .", f"*.{d} IN CNAME ."]
    return "\n".join(lines) + "\n"
