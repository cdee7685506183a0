"""City families: the parameter space of ordinary life and of fraud, named corners of it, and random draws.

A detector that learned one simulated city learns that city's signature of fraud. So a city is drawn from a
family: `Life` says how ordinary residents behave (the confounders: privacy numbers of couriers and drivers,
virtual-operator friends, repeated calls from new numbers, service SMS with links, first and large transfers,
meeting and remote-support apps, telemarketers calling the elderly), `Attack` how fraud shows up (incidence,
which scripts, stages skipped, reordered or stretched over days, rings on ordinary lines, case reports).

Every field has the value of the first simulated city ("textbook") as its default, so that family behaves as
it did. Rates are per resident per day unless a name says otherwise. `FAMILIES` holds the named families; `draw(k)`
a random one, seeded by `k`, from the ranges in `RANGES`. Each city writes its family's parameters beside its
ground truth, so a reader can see what was assumed.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from schemas.records import FRAUD_TYPES

SCRIPT_TYPES = tuple(t for t in FRAUD_TYPES if t != "unknown")


@dataclass(frozen=True)
class Life:
    """Ordinary behaviour, confounders included."""

    calls: float = 6.0  # calls with the resident's own contacts and businesses
    sms: float = 4.0  # bulk SMS from 106 ports, a quarter with a link
    dns: float = 8.0
    installs: float = 0.03
    payments: float = 1.2
    first_payee_share: float = 0.0  # of ordinary payments: to a payee this payer never paid before
    large_first_payments: float = 0.0015  # rent, a deposit, tuition, a car, a hospital: ¥30k-200k to a new payee
    telemarketing: float = 0.6  # calls to the elderly are four times as many
    telemarketing_long_share: float = 0.1  # some listen for 5-20 minutes, and nothing happens
    telemarketing_virtual_share: float = 0.0  # telemarketers on virtual-operator lines (tagged by the operator)
    birth_years: tuple[int, int] = (1935, 2006)
    second_line_share: float = 0.2
    unregistered_share: float = 0.25  # of second lines: bought without real-name registration (or not yet)
    family_abroad_share: float = 0.01
    work_meeting_share: float = 0.03  # install a meeting app, then a long call with a colleague
    platform_calls: float = 0.0  # couriers, food delivery, ride-hailing: short calls, a new privacy number each
    platform_virtual_share: float = 0.6  # of those, from virtual-operator ranges (tagged virtual_operator)
    mvno_friend_share: float = 0.0  # of a resident's outside contacts, on virtual-operator lines (tagged)
    outside_friends: int = 0  # contacts outside the city (their numbers are new to the pipeline at first)
    spoof_false_tag_rate: float = 0.0  # share of ordinary incoming calls an operator wrongly tags spoof_suspect
    new_acquaintances: float = 0.0  # a new number that keeps calling for days: landlord, agent, new colleague
    acquaintance_long_share: float = 0.3  # of those calls, 10-50 minutes long
    unknown_link_sms: float = 0.0  # SMS with a link from a mobile number: marketing, a second-hand seller
    service_link_sms: float = 0.0  # notices with a link from 95xxx / 12xxx: bank, courier, government
    link_follow_share: float = 0.3  # of link SMS, the link visited within minutes
    new_site_share: float = 0.01  # of lookups: a site the resident never visited
    remote_support: float = 0.0  # a service line walks the resident through installing a remote or meeting app
    deals: float = 0.0  # a new number calls (agent, seller), then a first transfer to a new payee within hours
    refunds: float = 0.0  # small incoming transfers from unknown accounts: refunds, red packets
    international_calls: float = 0.0  # business calls from abroad (tagged international)


@dataclass(frozen=True)
class Attack:
    """How fraud shows up."""

    attempts_per_10k_per_day: float = 12.0  # fraud contacts, engaged or not (real incidence: 0.5-5)
    type_weights: tuple[tuple[str, float], ...] = ()  # empty: the nine scripts equally
    engage_scale: float = 1.0  # × each script's share of contacted people who engage
    skip_stage: float = 0.0  # each stage before the money is left out with this probability
    reorder: float = 0.0  # probability that two neighbouring stages before the money swap
    stretch: float = 1.0  # × the gaps between stages (1: the script as written; 8: over days)
    ordinary_numbers: float = 0.0  # share of rings calling from ordinary mobile lines, untagged
    tag_rate: float = 1.0  # probability the operator tags one of a ring's calls at all
    numbers_per_ring: int = 3
    report_rate: float = 0.7  # victims who report a loss; the case's elements become indicators
    report_delay_hours: tuple[float, float] = (3.0, 30.0)  # from the loss to the indicators
    mistaken_flags: float = 0.2  # per 10k residents per day: a line or a site flagged by mistake, then retracted
    mistaken_confidence: float = 0.5
    mistaken_busy_share: float = 0.0  # of those, one of the city's busiest business lines (hundreds of callers)


@dataclass(frozen=True)
class Family:
    """A named corner of the space: what life and fraud look like in such a city."""

    name: str
    about: str
    life: Life = field(default_factory=Life)
    attack: Attack = field(default_factory=Attack)

    def describe(self) -> dict:
        """The family's parameters, as written beside a city's ground truth."""
        return {"name": self.name, "about": self.about, "life": dataclasses.asdict(self.life),
                "attack": dataclasses.asdict(self.attack)}


STRESSED = 50.0  # attempts per 10k per day in the named families: enough victims in a small city to measure recall

FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("textbook", "the first simulated city: fraud follows its scripts, ordinary life has few confounders"),
    Family("platform_city", "couriers, food delivery and drivers call through new privacy numbers every day, many "
           "friends are on virtual-operator lines, operators mistag some calls, first payees are common",
           Life(platform_calls=1.2, platform_virtual_share=0.7, mvno_friend_share=0.25, outside_friends=6,
                spoof_false_tag_rate=0.03, unknown_link_sms=0.3, link_follow_share=0.4, first_payee_share=0.15,
                refunds=0.05), Attack(attempts_per_10k_per_day=STRESSED)),
    Family("office", "younger residents: meeting and remote-support apps at work, new sites, links, online "
           "shopping with new payees, calls from abroad",
           Life(birth_years=(1975, 2004), work_meeting_share=0.25, remote_support=0.01, installs=0.15,
                new_site_share=0.05, unknown_link_sms=0.2, service_link_sms=0.3, first_payee_share=0.25,
                international_calls=0.05, platform_calls=0.5, outside_friends=4, mvno_friend_share=0.1),
           Attack(attempts_per_10k_per_day=STRESSED)),
    Family("elderly_town", "most residents over sixty, telemarketers on long calls, service notices with links, "
           "unregistered second lines; the scams that hunt the elderly",
           Life(birth_years=(1930, 1975), telemarketing=1.5, telemarketing_long_share=0.3,
                telemarketing_virtual_share=0.4, service_link_sms=0.4, link_follow_share=0.2, remote_support=0.004,
                second_line_share=0.1, unregistered_share=0.6, outside_friends=3, mvno_friend_share=0.1),
           Attack(attempts_per_10k_per_day=STRESSED,
                  type_weights=(("impersonate_authority", 3.0), ("fake_investment", 2.0), ("romance", 1.0),
                                ("impersonate_acquaintance", 2.0), ("fake_customer_service", 1.0)))),
    Family("moving_season", "new landlords, agents and colleagues call for days; deposits, rent and tuition go to "
           "new payees, often right after such a call; refunds come in",
           Life(new_acquaintances=0.06, acquaintance_long_share=0.4, deals=0.012, large_first_payments=0.01,
                first_payee_share=0.25, refunds=0.1, platform_calls=0.4, outside_friends=4),
           Attack(attempts_per_10k_per_day=STRESSED)),
    Family("stealth_rings", "rings on ordinary mobile lines, rarely tagged, scripts with stages skipped, swapped or "
           "stretched over days, few and late case reports",
           Life(platform_calls=0.5, outside_friends=4, mvno_friend_share=0.1, first_payee_share=0.1),
           Attack(attempts_per_10k_per_day=STRESSED, ordinary_numbers=0.7, tag_rate=0.3, skip_stage=0.3,
                  reorder=0.3, stretch=6.0, report_rate=0.4,
                  report_delay_hours=(12.0, 72.0))),
    Family("quick_strikes", "short, urgent scripts: the boss on a new number, the 'police', a refund; money moves "
           "within minutes of the first contact",
           Life(platform_calls=0.6, outside_friends=4, first_payee_share=0.1),
           Attack(attempts_per_10k_per_day=STRESSED,
                  type_weights=(("impersonate_acquaintance", 3.0), ("impersonate_authority", 2.0),
                                ("fake_customer_service", 2.0), ("game_trade", 1.0)), stretch=0.4, engage_scale=1.3)),
    Family("realistic", "fraud at a realistic incidence among a middling mix of every confounder",
           Life(platform_calls=0.8, mvno_friend_share=0.15, outside_friends=5, spoof_false_tag_rate=0.01,
                new_acquaintances=0.02, unknown_link_sms=0.15, service_link_sms=0.2, first_payee_share=0.15,
                large_first_payments=0.004, deals=0.004, refunds=0.04, work_meeting_share=0.08, remote_support=0.003,
                telemarketing_virtual_share=0.2, international_calls=0.01),
           Attack(attempts_per_10k_per_day=3.0, skip_stage=0.1, reorder=0.1, stretch=2.0, ordinary_numbers=0.3,
                  tag_rate=0.7)),
    Family("mistaken_flags", "lines and sites flagged by mistake with high confidence ten times as often, some of "
           "them the busiest business lines, retracted hours later", Life(platform_calls=0.5, outside_friends=4),
           Attack(attempts_per_10k_per_day=STRESSED, mistaken_flags=2.0, mistaken_confidence=0.9,
                  mistaken_busy_share=0.3)),
]}

# Where `draw` picks each parameter from: (low, high) uniformly, or a list to choose from.
RANGES: dict[str, dict[str, object]] = {
    "life": {
        "first_payee_share": (0.0, 0.3), "large_first_payments": (0.001, 0.012), "telemarketing": (0.3, 1.5),
        "telemarketing_long_share": (0.05, 0.3), "telemarketing_virtual_share": (0.0, 0.5),
        "birth_years": [(1935, 2006), (1930, 1975), (1975, 2004), (1945, 2000)],
        "second_line_share": (0.05, 0.35), "unregistered_share": (0.1, 0.6), "work_meeting_share": (0.0, 0.25),
        "platform_calls": (0.0, 1.5), "platform_virtual_share": (0.2, 0.9), "mvno_friend_share": (0.0, 0.3),
        "outside_friends": [0, 2, 4, 6, 8], "spoof_false_tag_rate": (0.0, 0.04), "new_acquaintances": (0.0, 0.06),
        "acquaintance_long_share": (0.1, 0.5), "unknown_link_sms": (0.0, 0.4), "service_link_sms": (0.0, 0.4),
        "link_follow_share": (0.1, 0.5), "new_site_share": (0.005, 0.06), "remote_support": (0.0, 0.012),
        "deals": (0.0, 0.015), "refunds": (0.0, 0.12), "international_calls": (0.0, 0.06), "installs": (0.02, 0.15),
    },
    "attack": {
        "attempts_per_10k_per_day": (2.0, 60.0), "engage_scale": (0.7, 1.4), "skip_stage": (0.0, 0.4),
        "reorder": (0.0, 0.4), "stretch": (0.3, 8.0), "ordinary_numbers": (0.0, 0.8), "tag_rate": (0.2, 1.0),
        "report_rate": (0.3, 0.9), "mistaken_flags": (0.05, 1.0), "mistaken_confidence": [0.5, 0.7, 0.9],
        "mistaken_busy_share": (0.0, 0.3),
    },
}


def _pick(rng: random.Random, spec: object) -> object:
    if isinstance(spec, list):
        return spec[rng.randrange(len(spec))]
    lo, hi = spec  # type: ignore[misc]
    return round(rng.uniform(lo, hi), 4)


def draw(k: int) -> Family:
    """A random family from the space, the same for the same `k`."""
    rng = random.Random(f"family-{k}")
    life = Life(**{name: _pick(rng, spec) for name, spec in RANGES["life"].items()})  # type: ignore[arg-type]
    attack = Attack(**{name: _pick(rng, spec) for name, spec in RANGES["attack"].items()})  # type: ignore[arg-type]
    return Family(f"draw-{k}", f"drawn at random from the parameter space (k={k})", life, attack)


def family(name: str) -> Family:
    """A named family, or `draw-K` for the K-th random one; KeyError names the known ones."""
    if name.startswith("draw-") and name[5:].isdigit():
        return draw(int(name[5:]))
    if name not in FAMILIES:
        raise KeyError(f"no family {name!r}: known are {', '.join(FAMILIES)} and draw-K")
    return FAMILIES[name]
