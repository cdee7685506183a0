"""Fraud rings and their episodes, each following its real-world script, with ground truth and case reports.

A script is a list of stages (a call, an SMS, a visit to the ring's site, an install, a transfer in or out),
each after a gap from the one before. The family's `Attack` bends them: stages before the money left out,
neighbours swapped, gaps stretched (a grooming of days) or shrunk, rings on ordinary lines, tags the operator
does not set, fewer or later case reports.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Callable

import msgspec

from schemas.records import DomainSignal, Indicator, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS, HOUR_MS, MINUTE_MS
from scorers.lab.city.family import SCRIPT_TYPES, Attack
from scorers.lab.city.population import Population, phone_of, second_phone_of

TYPES = list(SCRIPT_TYPES)

# How a ring's numbers present themselves on the network, by fraud type.
NUMBER_STYLE = {
    "fake_customer_service": (["+00852{:08d}", "+86170{:08d}"], ["spoof_suspect", "virtual_operator"]),
    "impersonate_authority": (["+00886{:08d}", "+86171{:08d}"], ["voip", "spoof_suspect"]),
    "rebate_task": (["+86165{:08d}"], ["virtual_operator"]),
    "fake_investment": (["+86167{:08d}"], ["virtual_operator"]),
    "fake_loan": (["+86170{:08d}"], ["virtual_operator"]),
    "impersonate_acquaintance": (["+86188{:08d}"], []),
    "romance": (["+0060{:09d}", "+86162{:08d}"], ["international"]),
    "game_trade": (["+86166{:08d}"], ["virtual_operator"]),
    "fake_credit_repair": (["+86170{:08d}", "0085{:08d}"], ["voip"]),
}
ORDINARY_STYLE = (["+86138{:08d}", "+86187{:08d}", "+86159{:08d}"], [])
ENGAGE = {"fake_customer_service": 0.4, "impersonate_authority": 0.35, "rebate_task": 0.45, "fake_investment": 0.4,
          "fake_loan": 0.4, "impersonate_acquaintance": 0.3, "romance": 0.35, "game_trade": 0.4,
          "fake_credit_repair": 0.35}
MONEY = ("pay_out", "pay_in")


@dataclass
class Ring:
    """A fraud ring's infrastructure: numbers, a site, an app, mule accounts (one may be a resident's card)."""

    ring_id: str
    fraud_type: str
    numbers: list[str]
    tags: list[str]
    domain: str
    app: str
    mules: list[str]
    mule_owner: int | None = None  # a resident whose card serves as a mule account


class EpisodeTruth(msgspec.Struct, kw_only=True):
    """Ground truth of one fraud attempt on one resident."""

    episode_id: str
    ring_id: str
    fraud_type: str
    victim: str  # subject id
    victim_line: str
    start_ts: int
    engaged: bool
    first_loss_ts: int | None = None  # the first completed transfer to the ring
    loss_fen: int = 0
    reported_ts: int | None = None
    event_ids: list[str] = []
    transfer_ids: list[str] = []  # the victim's transfers to the ring


@dataclass(frozen=True)
class Stage:
    """One step of a script: what happens, after how long (minutes, drawn from [lo, hi)), with what."""

    action: str  # call | sms | visit | install | pay_out | pay_in
    lo: int = 0
    hi: int = 1
    arg: int = 0  # call: duration (s); sms: 1 with a link; install: 1 for a meeting app; pay: amount (fen)
    number: int = 0  # which of the ring's numbers (or mules)
    after_completion: bool = False  # the gap counts from the transfer's completion
    session: bool = False  # starts a new session (a new day, a call back later): its gap may be stretched


def script(kind: str, r: random.Random) -> list[Stage]:
    """The stages of one engaged victim's episode, as the scam is reported to run."""
    if kind == "fake_customer_service":  # refund for a "faulty order": long call, refund link, meeting app, pay
        return [Stage("call", arg=r.randrange(900, 2400)), Stage("sms", 5, 20, 1, number=1), Stage("visit", 2, 10),
                Stage("install", 5, 15, int(r.random() < 0.5)), Stage("pay_out", 10, 30, r.randrange(500_000, 5_000_000)),
                Stage("pay_out", 10, 40, r.randrange(1_000_000, 10_000_000), number=1, after_completion=True)]
    if kind == "impersonate_authority":  # "your account is in a money-laundering case": very long calls
        return [Stage("call", arg=r.randrange(2400, 5400)), Stage("visit", 20, 90), Stage("install", 5, 20),
                Stage("call", 30, 120, r.randrange(1800, 3600), number=1, session=True),
                Stage("pay_out", 10, 30, r.randrange(5_000_000, 50_000_000))]
    if kind == "rebate_task":  # small rebates first, then growing "tasks"
        return ([Stage("sms", arg=1), Stage("visit", 10, 60), Stage("install", 5, 30)]
                + [Stage("pay_in", 20, 90, a + r.randrange(500)) for a in (1_000, 3_000, 8_000)]
                + [Stage("pay_out", 30, 180, a + r.randrange(10_000), number=k)
                   for k, a in enumerate((50_000, 300_000, 2_000_000))])
    if kind in ("fake_investment", "romance"):  # days of grooming, then the "platform" and the money
        stages = []
        for day in range(r.randrange(2, 5)):
            stages.append(Stage("sms", 0 if day == 0 else 900, 1500, 0, session=True))
            if r.random() < 0.6:
                stages.append(Stage("call", 300, 600, r.randrange(300, 2400)))
        return stages + [Stage("sms", 1200, 2400, 1, session=True), Stage("visit", 5, 60), Stage("install", 5, 30),
                         Stage("pay_out", 60, 600, r.randrange(1_000_000, 5_000_000)),
                         Stage("pay_out", 600, 1400, r.randrange(5_000_000, 30_000_000), number=1,
                               after_completion=True)]
    if kind == "fake_loan":  # a loan ad, an app, then "fees" before the loan is released
        return ([Stage("sms", arg=1), Stage("visit", 10, 120), Stage("install", 5, 20),
                 Stage("call", 30, 240, r.randrange(300, 900), session=True)]
                + [Stage("pay_out", 20, 120, a + r.randrange(20_000)) for a in (80_000, 200_000, 500_000)])
    if kind == "impersonate_acquaintance":  # "it's your boss, new number": quick and urgent
        return [Stage("sms", arg=0), Stage("call", 2, 10, r.randrange(60, 300)),
                Stage("pay_out", 5, 30, r.randrange(1_000_000, 8_000_000))]
    if kind == "game_trade":
        return [Stage("sms", arg=1), Stage("visit", 5, 60), Stage("pay_out", 10, 60, r.randrange(50_000, 800_000)),
                Stage("pay_out", 30, 180, r.randrange(100_000, 1_500_000), number=1)]
    if kind == "fake_credit_repair":
        return [Stage("call", arg=r.randrange(600, 1500)), Stage("visit", 10, 60), Stage("install", 10, 60),
                Stage("pay_out", 20, 120, r.randrange(300_000, 3_000_000))]
    raise ValueError(f"no script for {kind}")


def opening(kind: str, r: random.Random) -> Stage:
    """What a person who does not engage sees: a message, or a call they hang up on."""
    if kind in ("rebate_task", "fake_loan", "game_trade"):
        return Stage("sms", arg=1)
    return Stage("call", arg=r.randrange(0, 45))


def bend(stages: list[Stage], attack: Attack, r: random.Random) -> list[Stage]:
    """The script as this family's rings run it: stages before the money skipped or swapped (never the first)."""
    head, rest = stages[:1], stages[1:]
    if attack.skip_stage > 0:
        rest = [s for s in rest if s.action in MONEY or r.random() >= attack.skip_stage]
    if attack.reorder > 0:
        for k in range(len(rest) - 1):
            a, b = rest[k], rest[k + 1]
            if a.action not in MONEY and b.action not in MONEY and r.random() < attack.reorder:
                # each keeps its own content; the gaps (and session starts) stay where they were
                rest[k] = dataclasses.replace(b, lo=a.lo, hi=a.hi, session=a.session)
                rest[k + 1] = dataclasses.replace(a, lo=b.lo, hi=b.hi, session=b.session)
    return head + rest


@dataclass
class Script:
    """Builds one episode's records on a timeline."""

    ring: Ring
    truth: EpisodeTruth
    payer: str
    rng: random.Random
    next_id: Callable[[], str]
    tag_rate: float = 1.0
    records: list[tuple[int, str, object]] = field(default_factory=list)

    def _add(self, ts: int, topic: str, rec: object) -> None:
        self.records.append((ts, topic, rec))
        self.truth.event_ids.append(rec.event_id)  # type: ignore[attr-defined]

    def _tags(self) -> list[str]:
        return list(self.ring.tags) if self.tag_rate >= 1 or self.rng.random() < self.tag_rate else []

    def call(self, t: int, duration: int, number: int = 0) -> None:
        self._add(t, "signals.telecom", TelecomSignal(
            event_id=self.next_id(), ts=t, kind="call", direction="in", subscriber=self.truth.victim_line,
            counterpart=self.ring.numbers[number % len(self.ring.numbers)], duration_s=duration,
            counterpart_tags=self._tags()))

    def sms(self, t: int, with_url: bool = True, number: int = 0) -> None:
        self._add(t, "signals.telecom", TelecomSignal(
            event_id=self.next_id(), ts=t, kind="sms", direction="in", subscriber=self.truth.victim_line,
            counterpart=self.ring.numbers[number % len(self.ring.numbers)],
            urls=[f"http://{self.ring.domain}/{self.rng.randrange(10**6)}"] if with_url else [],
            counterpart_tags=self._tags()))

    def visit(self, t: int) -> None:
        self._add(t, "signals.domain", DomainSignal(event_id=self.next_id(), ts=t, subscriber=self.truth.victim_line,
                                                    kind="http", domain=self.ring.domain,
                                                    url=f"http://{self.ring.domain}/"))

    def install(self, t: int, app: str | None = None) -> None:
        self._add(t, "signals.domain", DomainSignal(event_id=self.next_id(), ts=t, subscriber=self.truth.victim_line,
                                                    kind="app_install", app=app or self.ring.app))

    def pay_out(self, t: int, amount: int, mule: int = 0) -> int:
        """A transfer to the ring: initiated, completed 1–3 minutes later (the loss). Returns the completion."""
        tid = f"tr-{self.next_id()}"
        payee = self.ring.mules[mule % len(self.ring.mules)]
        done = t + self.rng.randrange(60_000, 180_000)
        for ts, status in ((t, "initiated"), (done, "completed")):
            self._add(ts, "signals.payment", PaymentSignal(
                event_id=self.next_id(), ts=ts, transfer_id=tid, status=status, payer_account=self.payer,
                payer_phone=phone_of(int(self.truth.victim[1:])), payee_account=payee, payee_bank="BOCOM",
                amount_fen=amount, channel="mobile", payee_first_seen=True))
        if self.truth.first_loss_ts is None or done < self.truth.first_loss_ts:
            self.truth.first_loss_ts = done
        self.truth.loss_fen += amount
        self.truth.transfer_ids.append(tid)
        return done

    def pay_in(self, t: int, amount: int, mule: int = 0) -> None:
        """A small "rebate" paid by the ring to the victim, to build trust."""
        tid = f"tr-{self.next_id()}"
        for ts, status in ((t, "initiated"), (t + 30_000, "completed")):
            self._add(ts, "signals.payment", PaymentSignal(
                event_id=self.next_id(), ts=ts, transfer_id=tid, status=status,
                payer_account=self.ring.mules[mule % len(self.ring.mules)], payee_account=self.payer,
                payee_bank="ICBC", amount_fen=amount, channel="third_party"))

    def run(self, stages: list[Stage], stretch: float = 1.0) -> None:
        """Lay the stages out from the episode's start; the gaps before a new session × `stretch` (within a session,
        the steps follow each other as the scammer leads: minutes apart whatever the family)."""
        t = self.truth.start_ts
        last_done = t
        for k, st in enumerate(stages):
            if k > 0:
                gap = self.rng.randrange(st.lo, max(st.hi, st.lo + 1)) * MINUTE_MS
                stretched = st.session or st.action in MONEY
                t = (last_done if st.after_completion else t) + int(gap * (stretch if stretched else 1.0))
            if st.action == "call":
                self.call(t, st.arg, st.number)
            elif st.action == "sms":
                self.sms(t, bool(st.arg), st.number)
            elif st.action == "visit":
                self.visit(t)
            elif st.action == "install":
                self.install(t, "com.tencent.wemeet.app" if st.arg else None)
            elif st.action == "pay_in":
                self.pay_in(t, st.arg, st.number)
            else:
                last_done = self.pay_out(t, st.arg, st.number)


class Rings:
    """The city's fraud rings and the episodes they run, with case reports turned into indicators."""

    def __init__(self, pop: Population, n_rings: int, seed: int, attack: Attack | None = None) -> None:
        self.pop = pop
        self.attack = attack or Attack()
        self.rng = random.Random(seed)
        weights = dict(self.attack.type_weights) if self.attack.type_weights else dict.fromkeys(TYPES, 1.0)
        kinds = [t for t in TYPES if weights.get(t, 0) > 0]
        self.rings = [self._ring(k, kinds[k % len(kinds)]) for k in range(max(n_rings, len(kinds)))]
        self.weights = [weights[r.fraud_type] / sum(1 for q in self.rings if q.fraud_type == r.fraud_type)
                        for r in self.rings]
        self.n = 0
        self.episodes = 0

    def _ring(self, k: int, kind: str) -> Ring:
        r = self.rng
        patterns, tags = NUMBER_STYLE[kind]
        if self.attack.ordinary_numbers > 0 and r.random() < self.attack.ordinary_numbers:
            patterns, tags = ORDINARY_STYLE
        numbers = [patterns[j % len(patterns)].format(r.randrange(10**8)) for j in range(self.attack.numbers_per_ring)]
        mules = [f"6217{r.randrange(10**12):012d}" for _ in range(4)]
        owner = None
        if k % 3 == 0:  # a registered resident's spare card serves as a mule account (一人多卡): sold or lent
            owner = r.randrange(self.pop.n)
            while self.pop.cards[owner] < 2:
                owner = r.randrange(self.pop.n)
            mules[0] = self.pop.accounts_of(owner)[-1]
        domain = f"{kind.split('_')[-1][:6]}-{r.randrange(10**5)}.{r.choice(['top', 'xyz', 'cc', 'vip'])}"
        return Ring(ring_id=f"R{k:03d}", fraud_type=kind, numbers=numbers, tags=list(tags), domain=domain,
                    app=f"com.{kind.split('_')[0]}.helper{k}", mules=mules, mule_owner=owner)

    def pick(self) -> Ring:
        """The ring behind the next attempt, by the family's mix of fraud types."""
        if not self.attack.type_weights:
            return self.rng.choice(self.rings)
        return self.rng.choices(self.rings, weights=self.weights)[0]

    def _id(self) -> str:
        self.n += 1
        return f"f{self.n}"

    def _victim(self, kind: str) -> int:
        while True:
            i = self.rng.randrange(self.pop.n)
            age = self.pop.age(i)
            weight = {"impersonate_authority": 3.0 if age >= 60 else 1.0, "rebate_task": 3.0 if age < 35 else 1.0,
                      "game_trade": 4.0 if age < 30 else 0.5, "romance": 2.0 if 30 <= age <= 60 else 1.0}.get(kind, 1.0)
            if age >= 18 and self.rng.random() < weight / 4.0:
                return i

    def episode(self, ring: Ring, start_ts: int) -> tuple[EpisodeTruth, list[tuple[int, str, object]]]:
        """One attempt of `ring` on a resident it picks, starting at `start_ts`."""
        r, attack = self.rng, self.attack
        victim = self._victim(ring.fraud_type)
        line = second_phone_of(victim) if self.pop.second_line[victim] and r.random() < 0.3 else phone_of(victim)
        self.episodes += 1
        truth = EpisodeTruth(episode_id=f"E{self.episodes:06d}", ring_id=ring.ring_id, fraud_type=ring.fraud_type,
                             victim=self.pop.subject_id(victim), victim_line=line, start_ts=start_ts,
                             engaged=r.random() < min(0.95, ENGAGE[ring.fraud_type] * attack.engage_scale))
        s = Script(ring, truth, self.pop.accounts_of(victim)[0], r, self._id, attack.tag_rate)
        if truth.engaged:
            s.run(bend(script(ring.fraud_type, r), attack, r), attack.stretch)
        else:
            s.run([opening(ring.fraud_type, r)])
        return truth, s.records

    def report(self, truth: EpisodeTruth, ring: Ring) -> list[tuple[int, str, object]]:
        """A victim who lost money may report it; hours later the case's elements become indicators."""
        if truth.first_loss_ts is None or self.rng.random() > self.attack.report_rate:
            return []
        lo, hi = self.attack.report_delay_hours
        truth.reported_ts = truth.first_loss_ts + self.rng.randrange(int((lo - 1) * HOUR_MS), int((hi - 6) * HOUR_MS))
        known = truth.reported_ts + self.rng.randrange(HOUR_MS, 6 * HOUR_MS)  # the case handler files the elements
        values = ([("phone", n) for n in ring.numbers] + [("domain", ring.domain), ("app", ring.app)]
                  + [("account", m) for m in ring.mules])
        return [(known, "intel.indicators", Indicator(type=kind, value=v, action="add", fraud_type=ring.fraud_type,
                                                      confidence=0.9, source=f"case-{truth.episode_id}", ts=known,
                                                      expires_ts=known + 30 * DAY_MS)) for kind, v in values]

    def wrongly_flagged(self, day_start: int) -> list[tuple[int, str, object]]:
        """A legitimate line or site flagged by mistake, retracted hours later: one of the busiest business lines
        (hundreds of callers), any business line, a resident's own line, or an ordinary site."""
        r = self.rng
        if self.attack.mistaken_busy_share >= 1 or r.random() < self.attack.mistaken_busy_share:
            kind, value = "phone", f"400{r.randrange(20):07d}"
        else:
            kind, value = r.choice([("phone", f"400{r.randrange(2000):07d}"),
                                    ("phone", phone_of(r.randrange(self.pop.n))),
                                    ("domain", f"site{r.randrange(5000)}.com.cn")])
        t = day_start + r.randrange(8 * HOUR_MS, 14 * HOUR_MS)
        common = {"type": kind, "value": value, "fraud_type": "unknown",
                  "confidence": self.attack.mistaken_confidence, "source": f"mistake-{t}"}
        retracted = t + r.randrange(3 * HOUR_MS, 8 * HOUR_MS)
        return [(t, "intel.indicators", Indicator(action="add", ts=t, **common)),  # type: ignore[arg-type]
                (retracted, "intel.indicators", Indicator(action="retract", ts=retracted, **common))]  # type: ignore[arg-type]
