"""Fraud rings and their episodes, each following its real-world script, with ground truth and case reports."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import msgspec

from schemas.records import FRAUD_TYPES, DomainSignal, Indicator, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS, HOUR_MS, MINUTE_MS
from scorers.lab.city.population import Population, phone_of, second_phone_of

TYPES = [t for t in FRAUD_TYPES if t != "unknown"]

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
ENGAGE = {"fake_customer_service": 0.4, "impersonate_authority": 0.35, "rebate_task": 0.45, "fake_investment": 0.4,
          "fake_loan": 0.4, "impersonate_acquaintance": 0.3, "romance": 0.35, "game_trade": 0.4,
          "fake_credit_repair": 0.35}


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


@dataclass
class Script:
    """Builds one episode's records on a timeline."""

    ring: Ring
    truth: EpisodeTruth
    payer: str
    rng: random.Random
    next_id: Callable[[], str]
    records: list[tuple[int, str, object]] = field(default_factory=list)

    def _add(self, ts: int, topic: str, rec: object) -> None:
        self.records.append((ts, topic, rec))
        self.truth.event_ids.append(rec.event_id)  # type: ignore[attr-defined]

    def call(self, t: int, duration: int, number: int = 0) -> None:
        self._add(t, "signals.telecom", TelecomSignal(
            event_id=self.next_id(), ts=t, kind="call", direction="in", subscriber=self.truth.victim_line,
            counterpart=self.ring.numbers[number % len(self.ring.numbers)], duration_s=duration,
            counterpart_tags=list(self.ring.tags)))

    def sms(self, t: int, with_url: bool = True, number: int = 0) -> None:
        self._add(t, "signals.telecom", TelecomSignal(
            event_id=self.next_id(), ts=t, kind="sms", direction="in", subscriber=self.truth.victim_line,
            counterpart=self.ring.numbers[number % len(self.ring.numbers)],
            urls=[f"http://{self.ring.domain}/{self.rng.randrange(10**6)}"] if with_url else [],
            counterpart_tags=list(self.ring.tags)))

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
        return done

    def pay_in(self, t: int, amount: int, mule: int = 0) -> None:
        """A small "rebate" paid by the ring to the victim, to build trust."""
        tid = f"tr-{self.next_id()}"
        for ts, status in ((t, "initiated"), (t + 30_000, "completed")):
            self._add(ts, "signals.payment", PaymentSignal(
                event_id=self.next_id(), ts=ts, transfer_id=tid, status=status,
                payer_account=self.ring.mules[mule % len(self.ring.mules)], payee_account=self.payer,
                payee_bank="ICBC", amount_fen=amount, channel="third_party"))


def _minutes(rng: random.Random, lo: int, hi: int) -> int:
    return rng.randrange(lo, hi) * MINUTE_MS


def play(s: Script) -> None:
    """Lay out the episode's events: the opening for everyone, the rest of the script for those who engage."""
    r, t, kind = s.rng, s.truth.start_ts, s.ring.fraud_type
    if not s.truth.engaged:  # contacted, but hangs up or ignores the message
        if kind in ("rebate_task", "fake_loan", "game_trade"):
            s.sms(t, with_url=True)
        else:
            s.call(t, r.randrange(0, 45))
        return
    if kind == "fake_customer_service":  # refund for a "faulty order": long call, refund link, meeting app, pay
        s.call(t, r.randrange(900, 2400))
        t += _minutes(r, 5, 20); s.sms(t, number=1)
        t += _minutes(r, 2, 10); s.visit(t)
        t += _minutes(r, 5, 15); s.install(t, "com.tencent.wemeet.app" if r.random() < 0.5 else s.ring.app)
        t += _minutes(r, 10, 30); t = s.pay_out(t, r.randrange(500_000, 5_000_000))
        t += _minutes(r, 10, 40); s.pay_out(t, r.randrange(1_000_000, 10_000_000), mule=1)
    elif kind == "impersonate_authority":  # "your account is in a money-laundering case": very long calls
        s.call(t, r.randrange(2400, 5400))
        t += _minutes(r, 20, 90); s.visit(t)
        t += _minutes(r, 5, 20); s.install(t)
        t += _minutes(r, 30, 120); s.call(t, r.randrange(1800, 3600), number=1)
        t += _minutes(r, 10, 30); s.pay_out(t, r.randrange(5_000_000, 50_000_000))
    elif kind == "rebate_task":  # small rebates first, then growing "tasks"
        s.sms(t)
        t += _minutes(r, 10, 60); s.visit(t)
        t += _minutes(r, 5, 30); s.install(t)
        for amount in (1_000, 3_000, 8_000):
            t += _minutes(r, 20, 90); s.pay_in(t, amount + r.randrange(500))
        for amount in (50_000, 300_000, 2_000_000):
            t += _minutes(r, 30, 180); s.pay_out(t, amount + r.randrange(10_000), mule=len(s.truth.event_ids))
    elif kind in ("fake_investment", "romance"):  # days of grooming, then the "platform" and the money
        for day in range(r.randrange(2, 5)):
            s.sms(t + day * DAY_MS + _minutes(r, 0, 600), with_url=False)
            if r.random() < 0.6:
                s.call(t + day * DAY_MS + _minutes(r, 600, 900), r.randrange(300, 2400))
        t += 4 * DAY_MS + _minutes(r, 0, 300); s.sms(t); t += _minutes(r, 5, 60); s.visit(t)
        t += _minutes(r, 5, 30); s.install(t)
        t += _minutes(r, 60, 600); t = s.pay_out(t, r.randrange(1_000_000, 5_000_000))
        t += _minutes(r, 600, 1400); s.pay_out(t, r.randrange(5_000_000, 30_000_000), mule=1)
    elif kind == "fake_loan":  # a loan ad, an app, then "fees" before the loan is released
        s.sms(t)
        t += _minutes(r, 10, 120); s.visit(t)
        t += _minutes(r, 5, 20); s.install(t)
        t += _minutes(r, 30, 240); s.call(t, r.randrange(300, 900))
        for amount in (80_000, 200_000, 500_000):
            t += _minutes(r, 20, 120); s.pay_out(t, amount + r.randrange(20_000))
    elif kind == "impersonate_acquaintance":  # "it's your boss, new number": quick and urgent
        s.sms(t, with_url=False)
        t += _minutes(r, 2, 10); s.call(t, r.randrange(60, 300))
        t += _minutes(r, 5, 30); s.pay_out(t, r.randrange(1_000_000, 8_000_000))
    elif kind == "game_trade":
        s.sms(t)
        t += _minutes(r, 5, 60); s.visit(t)
        t += _minutes(r, 10, 60); s.pay_out(t, r.randrange(50_000, 800_000))
        t += _minutes(r, 30, 180); s.pay_out(t, r.randrange(100_000, 1_500_000), mule=1)
    elif kind == "fake_credit_repair":
        s.call(t, r.randrange(600, 1500))
        t += _minutes(r, 10, 60); s.visit(t)
        t += _minutes(r, 10, 60); s.install(t)
        t += _minutes(r, 20, 120); s.pay_out(t, r.randrange(300_000, 3_000_000))


class Rings:
    """The city's fraud rings and the episodes they run, with case reports turned into indicators."""

    def __init__(self, pop: Population, n_rings: int, seed: int) -> None:
        self.pop = pop
        self.rng = random.Random(seed)
        self.rings = [self._ring(k, TYPES[k % len(TYPES)]) for k in range(n_rings)]
        self.n = 0
        self.episodes = 0

    def _ring(self, k: int, kind: str) -> Ring:
        r = self.rng
        patterns, tags = NUMBER_STYLE[kind]
        numbers = [patterns[j % len(patterns)].format(r.randrange(10**8)) for j in range(3)]
        mules = [f"6217{r.randrange(10**12):012d}" for _ in range(4)]
        owner = None
        if k % 3 == 0:  # one card of a registered resident serves as a mule account (一人多卡)
            owner = r.randrange(self.pop.n)
            mules[0] = self.pop.accounts_of(owner)[0]
        domain = f"{kind.split('_')[-1][:6]}-{r.randrange(10**5)}.{r.choice(['top', 'xyz', 'cc', 'vip'])}"
        return Ring(ring_id=f"R{k:03d}", fraud_type=kind, numbers=numbers, tags=list(tags), domain=domain,
                    app=f"com.{kind.split('_')[0]}.helper{k}", mules=mules, mule_owner=owner)

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
        r = self.rng
        victim = self._victim(ring.fraud_type)
        line = second_phone_of(victim) if self.pop.second_line[victim] and r.random() < 0.3 else phone_of(victim)
        self.episodes += 1
        truth = EpisodeTruth(episode_id=f"E{self.episodes:06d}", ring_id=ring.ring_id, fraud_type=ring.fraud_type,
                             victim=self.pop.subject_id(victim), victim_line=line, start_ts=start_ts,
                             engaged=r.random() < ENGAGE[ring.fraud_type])
        script = Script(ring, truth, self.pop.accounts_of(victim)[0], r, self._id)
        play(script)
        return truth, script.records

    def report(self, truth: EpisodeTruth, ring: Ring) -> list[tuple[int, str, object]]:
        """A victim who lost money reports it (70 %); hours later the case's elements become indicators."""
        if truth.first_loss_ts is None or self.rng.random() > 0.7:
            return []
        truth.reported_ts = truth.first_loss_ts + self.rng.randrange(2 * HOUR_MS, 24 * HOUR_MS)
        known = truth.reported_ts + self.rng.randrange(HOUR_MS, 6 * HOUR_MS)  # the case handler files the elements
        values = ([("phone", n) for n in ring.numbers] + [("domain", ring.domain), ("app", ring.app)]
                  + [("account", m) for m in ring.mules])
        return [(known, "intel.indicators", Indicator(type=kind, value=v, action="add", fraud_type=ring.fraud_type,
                                                      confidence=0.9, source=f"case-{truth.episode_id}", ts=known,
                                                      expires_ts=known + 30 * DAY_MS)) for kind, v in values]

    def wrongly_flagged(self, day_start: int) -> list[tuple[int, str, object]]:
        """A legitimate business number flagged by mistake, retracted hours later."""
        number = f"400{self.rng.randrange(20):07d}"  # one of the city's busiest business lines
        t = day_start + self.rng.randrange(8 * HOUR_MS, 14 * HOUR_MS)
        common = {"type": "phone", "value": number, "fraud_type": "unknown", "confidence": 0.5,
                  "source": f"mistake-{t}"}
        retracted = t + self.rng.randrange(3 * HOUR_MS, 8 * HOUR_MS)
        return [(t, "intel.indicators", Indicator(action="add", ts=t, **common)),  # type: ignore[arg-type]
                (retracted, "intel.indicators", Indicator(action="retract", ts=retracted, **common))]  # type: ignore[arg-type]
