"""Routing: a warning's labels (tier, fraud type, grid, station) to its route, from a validated config file.

`match_routes` is pure: the first route whose matchers all hold wins, like Alertmanager's routing tree
without nesting. A route's steps are channels with deadlines; escalation walks them in order.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from schemas.records import FRAUD_TYPES
from schemas.units import MINUTE_MS

ROUTES_FILE = Path(__file__).parent / "config" / "routes.toml"
CHANNELS = ("sms", "phone", "visit")
LABELS = ("tier", "fraud_type", "grid", "station")


class RouteConfigError(ValueError):
    """The routing config is invalid; the message names the route and the field."""


@dataclass(frozen=True)
class Step:
    """One channel of a route and how long after the warning it must be done."""

    channel: str
    within_ms: int


@dataclass(frozen=True)
class Route:
    """A named route: the labels it matches, its steps, whether it asks for a stop-payment."""

    name: str
    match: Mapping[str, frozenset[str]]
    steps: tuple[Step, ...]
    stop_payment: bool = False
    mode: str = "escalate"  # "all": every step at once; "escalate": the next step when the previous fails
    quiet_hours: bool = False  # SMS wait until morning (local time)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """All matchers hold for the labels."""
        return all(labels.get(k) in allowed for k, allowed in self.match.items())


@dataclass(frozen=True)
class StopPaymentTerms:
    """Who asks banks to stop a transfer, on what legal basis, and for how long the stop holds."""

    requesting_unit: str = "CITY-ANTIFRAUD-CENTER"
    legal_basis: str = "《中华人民共和国反电信网络诈骗法》第二十条（涉案资金紧急止付）"
    hold_ms: int = 48 * 60 * MINUTE_MS


@dataclass(frozen=True)
class RoutingConfig:
    """The routes, the stations they may name, the desk for warnings without a station, and the stop-payment
    terms."""

    version: str
    routes: tuple[Route, ...]
    stations: frozenset[str]
    default_station: str
    cooldown_ms: int = 24 * 60 * MINUTE_MS
    stop_payment: StopPaymentTerms = StopPaymentTerms()


def _route(i: int, doc: dict[str, Any], stations: frozenset[str]) -> Route:
    name = str(doc.get("name") or f"route {i + 1}")
    where = f"route {name!r}"
    match: dict[str, frozenset[str]] = {}
    for label, value in dict(doc.get("match", {})).items():
        if label not in LABELS:
            raise RouteConfigError(f"{where}: unknown label {label!r} (known: {', '.join(LABELS)})")
        values = frozenset([value] if isinstance(value, str) else value)
        if label == "tier" and not values <= {"T1", "T2", "T3"}:
            raise RouteConfigError(f"{where}: unknown tier in {sorted(values)}")
        if label == "fraud_type" and not values <= set(FRAUD_TYPES):
            raise RouteConfigError(f"{where}: unknown fraud type in {sorted(values)}")
        if label == "station" and not values <= stations:
            raise RouteConfigError(f"{where}: unknown station {sorted(values - stations)}")
        match[label] = values
    steps = []
    for step in doc.get("steps", []):
        channel = step.get("channel")
        if channel not in CHANNELS:
            raise RouteConfigError(f"{where}: unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
        within = step.get("within")
        if not isinstance(within, int) or within <= 0:
            raise RouteConfigError(f"{where}: step {channel!r} needs `within` minutes > 0")
        steps.append(Step(channel, within * MINUTE_MS))
    if not steps:
        raise RouteConfigError(f"{where}: no steps")
    if any(b.within_ms < a.within_ms for a, b in zip(steps, steps[1:])):
        raise RouteConfigError(f"{where}: step deadlines must not decrease (escalation goes forward in time)")
    mode = str(doc.get("mode", "escalate"))
    if mode not in ("all", "escalate"):
        raise RouteConfigError(f"{where}: mode must be 'all' or 'escalate', not {mode!r}")
    return Route(name, match, tuple(steps), bool(doc.get("stop_payment", False)), mode,
                 bool(doc.get("quiet_hours", False)))


def parse_routes(text: str) -> RoutingConfig:
    """Parse and validate a routing config (TOML); the last route must match everything left."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RouteConfigError(f"not valid TOML: {exc}") from None
    stations = frozenset(doc.get("stations", []))
    routes = tuple(_route(i, r, stations) for i, r in enumerate(doc.get("route", [])))
    if not routes:
        raise RouteConfigError("no routes")
    for tier in ("T1", "T2", "T3"):  # every warning must have a route: some route may constrain only the tier
        if not any(set(r.match) <= {"tier"} and tier in r.match.get("tier", frozenset([tier])) for r in routes):
            raise RouteConfigError(f"no route catches every {tier} warning (add one matching only tier={tier})")
    cooldown = doc.get("cooldown_hours", 24)
    if not isinstance(cooldown, int) or cooldown < 0:
        raise RouteConfigError("cooldown_hours must be a whole number of hours >= 0")
    return RoutingConfig(str(doc.get("version", "unversioned")), routes, stations,
                         str(doc.get("default_station", "CITY-DESK")), cooldown * 60 * MINUTE_MS,
                         _stop_payment_terms(dict(doc.get("stop_payment", {}))))


def _stop_payment_terms(doc: dict[str, Any]) -> StopPaymentTerms:
    unknown = set(doc) - {"requesting_unit", "legal_basis", "hold_hours"}
    if unknown:
        raise RouteConfigError(f"stop_payment: unknown keys {sorted(unknown)}")
    hours = doc.get("hold_hours", 48)
    if not isinstance(hours, int) or hours <= 0:
        raise RouteConfigError("stop_payment.hold_hours must be a whole number of hours > 0")
    default = StopPaymentTerms()
    unit = str(doc.get("requesting_unit", default.requesting_unit))
    basis = str(doc.get("legal_basis", default.legal_basis))
    if not unit.strip() or not basis.strip():
        raise RouteConfigError("stop_payment: requesting_unit and legal_basis may not be empty (a bank refuses such a "
                               "request)")
    return StopPaymentTerms(unit, basis, hours * 60 * MINUTE_MS)


def load_routes(path: Path = ROUTES_FILE) -> RoutingConfig:
    """The routing config from its file (default: dispatch/config/routes.toml)."""
    return parse_routes(path.read_text())


def match_routes(config: RoutingConfig, labels: Mapping[str, str]) -> Route:
    """The route a warning with these labels takes: the first that matches."""
    for route in config.routes:
        if route.matches(labels):
            return route
    raise LookupError(f"no route for {dict(labels)}")  # parse_routes makes this unreachable for valid tiers


def describe(config: RoutingConfig, labels: Mapping[str, str]) -> str:
    """The route a warning would take, as `yujing route-test` prints it."""
    route = match_routes(config, labels)
    station = labels.get("station") or config.default_station
    lines = [f"route: {route.name} ({config.version})" + ("  + stop-payment request" if route.stop_payment else "")]
    for n, step in enumerate(route.steps, 1):
        queue = {"sms": "dispatch.sms to the person's line",
                 "phone": f"dispatch.phone for station {station}",
                 "visit": f"dispatch.visit for grid {labels.get('grid') or '(the person’s grid)'}, station {station}"}
        lines.append(f"  {n}. {step.channel:<5} within {step.within_ms // MINUTE_MS:>5} min   {queue[step.channel]}")
    return "\n".join(lines)
