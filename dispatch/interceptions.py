"""The blocked domains at a moment, and the DNS RPZ zone that blocks them, as pure functions."""
from __future__ import annotations

import time

from schemas.records import DomainInterception


def active_domains(records: list[DomainInterception], now_ms: int) -> list[str]:
    """Domains blocked at `now_ms`: the latest record per domain decides, an expired one unblocks."""
    latest: dict[str, DomainInterception] = {}
    for r in records:
        if r.domain not in latest or r.ts >= latest[r.domain].ts:
            latest[r.domain] = r
    return sorted(d for d, r in latest.items() if r.expires_ts is None or r.expires_ts > now_ms)


MAX_NAME_TEXT = 253  # a DNS name is at most 255 octets on the wire: 253 characters written without the root dot


def fits_zone(domain: str, origin: str) -> bool:
    """True when the zone's names for `domain` (its wildcard under the origin, the longest) are legal DNS names."""
    return len(f"*.{domain}.{origin}") <= MAX_NAME_TEXT


def rpz_zone(domains: list[str], origin: str = "rpz.yujing.local", serial: int | None = None) -> tuple[str, list[str]]:
    """A DNS RPZ zone that answers NXDOMAIN for each domain and its subdomains (`CNAME .`), and the domains left
    out because their names under the origin would be too long (one such name makes the whole zone unloadable)."""
    serial = serial if serial is not None else int(time.time())
    lines = [f"$ORIGIN {origin}.", "$TTL 300",
             f"@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )", "@ IN NS localhost."]
    skipped = [d for d in domains if not fits_zone(d, origin)]
    for d in domains:
        if fits_zone(d, origin):
            lines += [f"{d} IN CNAME .", f"*.{d} IN CNAME ."]
    return "\n".join(lines) + "\n", skipped
