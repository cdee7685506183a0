"""Ordinary daily traffic and the confounders that make naive rules fail, generated per time slice with numpy."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from schemas.records import DomainSignal, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS, MINUTE_MS
from scorers.lab.city.population import Population, phone_of, second_phone_of

SLICE_MS = 15 * MINUTE_MS

# Daily rates per resident.
RATES = {"call": 6.0, "sms": 4.0, "dns": 8.0, "install": 0.03, "pay": 1.2, "telemarketing": 0.6,
         "big_payment": 0.0015}
# Share of each hour's traffic (quiet nights, busy days); sums to 24.
DIURNAL = np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.2, 1.5, 1.5, 1.4, 1.4,
                    1.4, 1.3, 1.4, 1.4, 1.4, 1.5, 1.6, 1.7, 1.6, 1.3, 0.9, 0.5])
DIURNAL = DIURNAL * 24 / DIURNAL.sum()

LEGIT_APPS = [f"com.legit.app{k}" for k in range(200)] + ["com.tencent.mm", "com.eg.android.AlipayGphone"]
MEETING_APPS = ["com.tencent.wemeet.app", "us.zoom.videomeetings"]
FAMILY_ABROAD = ["+447700900123", "+14155550123", "+61491570156", "+81312345678"]


def _zipf(rng: np.random.Generator, n: int, size: int, a: float = 1.3) -> np.ndarray:
    return np.minimum(rng.zipf(a, size) - 1, n - 1)


class Traffic:
    """Everything ordinary residents do, slice by slice, as contract records in event-time order."""

    def __init__(self, pop: Population, rng: np.random.Generator) -> None:
        self.pop = pop
        self.rng = rng
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"s{self.n}"

    def slice(self, start: int) -> Iterator[tuple[str, object]]:
        """The ordinary records of one 15-minute slice starting at `start` (sorted by the caller)."""
        rng, pop = self.rng, self.pop
        hour = int((start // 3_600_000 + 8) % 24)  # local time, UTC+8
        frac = SLICE_MS / DAY_MS * DIURNAL[hour]
        for kind, rate in RATES.items():
            lam = rate * frac
            if kind == "telemarketing":  # telemarketers call the elderly far more
                weights = np.where(pop.birth_year < 1960, 4.0, 0.5)
                counts = rng.poisson(lam * weights)
            else:
                counts = rng.poisson(lam, pop.n)
            who = np.repeat(np.arange(pop.n), counts)
            if len(who) == 0:
                continue
            ts = start + rng.integers(0, SLICE_MS, len(who))
            yield from getattr(self, f"_{kind}")(who, ts)
        yield from self._confounders(start, frac)

    def _line(self, i: int, r: float) -> str:
        return second_phone_of(i) if self.pop.second_line[i] and r < 0.3 else phone_of(i)

    def _call(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        rng, pop = self.rng, self.pop
        pick = rng.integers(0, 12, len(who))
        business = rng.random(len(who)) < 0.15
        biz = _zipf(rng, 2000, len(who))
        dur = rng.exponential(150, len(who)).astype(int)
        outgoing = rng.random(len(who)) < 0.5
        r = rng.random(len(who))
        for k, i in enumerate(who.tolist()):
            other = f"400{biz[k]:07d}" if business[k] else phone_of(int(pop.contacts[i, pick[k]]))
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=int(ts[k]), kind="call", direction="out" if outgoing[k] else "in",
                subscriber=self._line(i, r[k]), counterpart=other, duration_s=int(dur[k]))

    def _sms(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        rng = self.rng
        sender = _zipf(rng, 3000, len(who))
        with_url = rng.random(len(who)) < 0.25
        site = _zipf(rng, 5000, len(who), 1.2)
        for k, i in enumerate(who.tolist()):
            urls = [f"https://m.site{site[k]}.com.cn/p/{k % 97}"] if with_url[k] else []
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=int(ts[k]), kind="sms", direction="in", subscriber=phone_of(i),
                counterpart=f"10690{sender[k]:08d}", urls=urls)

    def _dns(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        rng = self.rng
        site = _zipf(rng, 5000, len(who), 1.2)
        new_site = rng.random(len(who)) < 0.01  # a brand-new but legitimate site
        for k, i in enumerate(who.tolist()):
            domain = f"new{rng.integers(10**6)}.shop.cn" if new_site[k] else f"site{site[k]}.com.cn"
            yield "signals.domain", DomainSignal(event_id=self._id(), ts=int(ts[k]), subscriber=phone_of(i),
                                                 kind="dns", domain=domain)

    def _install(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        pick = self.rng.integers(0, len(LEGIT_APPS), len(who))
        for k, i in enumerate(who.tolist()):
            yield "signals.domain", DomainSignal(event_id=self._id(), ts=int(ts[k]), subscriber=phone_of(i),
                                                 kind="app_install", app=LEGIT_APPS[pick[k]])

    def _pay(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        rng, pop = self.rng, self.pop
        merchant = _zipf(rng, 3000, len(who))
        to_person = rng.random(len(who)) < 0.3
        amount = (rng.lognormal(8.5, 1.2, len(who))).astype(int) + 100
        for k, i in enumerate(who.tolist()):
            payer = pop.accounts_of(i)[0]
            payee = pop.accounts_of(int(pop.contacts[i, k % 12]))[0] if to_person[k] else f"6225{merchant[k]:012d}"
            yield from _transfer(self._id, int(ts[k]), payer, payee, int(amount[k]), phone_of(i), first_seen=False)

    def _telemarketing(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        rng = self.rng
        caller = rng.integers(0, 5000, len(who))
        long_call = rng.random(len(who)) < 0.1  # some elderly listen for a long time, and nothing happens
        dur = np.where(long_call, rng.integers(300, 1200, len(who)), rng.integers(0, 60, len(who)))
        for k, i in enumerate(who.tolist()):
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=int(ts[k]), kind="call", direction="in", subscriber=phone_of(i),
                counterpart=f"95{caller[k]:04d}" if caller[k] % 3 else f"0755{caller[k]:08d}", duration_s=int(dur[k]))

    def _big_payment(self, who: np.ndarray, ts: np.ndarray) -> Iterator[tuple[str, object]]:
        """A legitimate large first payment to a new payee: a car, a deposit, a new landlord."""
        amount = self.rng.integers(3_000_000, 20_000_000, len(who))
        for k, i in enumerate(who.tolist()):
            yield from _transfer(self._id, int(ts[k]), self.pop.accounts_of(i)[0], f"6230{i:08d}{k % 10:04d}",
                                 int(amount[k]), phone_of(i), first_seen=True, channel="counter")

    def _confounders(self, start: int, frac: float) -> Iterator[tuple[str, object]]:
        rng, pop = self.rng, self.pop
        abroad = np.flatnonzero(pop.family_abroad & (rng.random(pop.n) < 0.5 * frac * 4))
        for i in abroad.tolist():
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=start + int(rng.integers(SLICE_MS)), kind="call", direction="in",
                subscriber=phone_of(i), counterpart=FAMILY_ABROAD[i % 4], duration_s=int(rng.integers(600, 3600)),
                counterpart_tags=["international"])
        meeting = np.flatnonzero(pop.work_meetings & (rng.random(pop.n) < 0.3 * frac * 4))
        for i in meeting.tolist():
            t = start + int(rng.integers(SLICE_MS))
            yield "signals.domain", DomainSignal(event_id=self._id(), ts=t, subscriber=phone_of(i),
                                                 kind="app_install", app=MEETING_APPS[i % 2])
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=t + 60_000, kind="call", direction="in", subscriber=phone_of(i),
                counterpart=phone_of(int(pop.contacts[i, 0])), duration_s=int(rng.integers(1200, 3600)))


def _transfer(next_id, ts: int, payer: str, payee: str, amount: int, phone: str, first_seen: bool,  # type: ignore[no-untyped-def]
              channel: str = "mobile", held: bool = False) -> Iterator[tuple[str, object]]:
    """The events of one transfer: initiated, then completed (or held) a little later."""
    tid = f"tr-{next_id()}"
    yield "signals.payment", PaymentSignal(event_id=next_id(), ts=ts, transfer_id=tid, status="initiated",
                                           payer_account=payer, payer_phone=phone, payee_account=payee,
                                           payee_bank="ICBC", amount_fen=amount, channel=channel,
                                           payee_first_seen=first_seen)
    yield "signals.payment", PaymentSignal(event_id=next_id(), ts=ts + 30_000, transfer_id=tid,
                                           status="held" if held else "completed", payer_account=payer,
                                           payer_phone=phone, payee_account=payee, payee_bank="ICBC",
                                           amount_fen=amount, channel=channel, payee_first_seen=first_seen)
