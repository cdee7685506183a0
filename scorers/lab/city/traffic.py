"""Ordinary daily traffic and the confounders that make naive rules fail, generated per time slice with numpy.

The base traffic (calls with contacts and businesses, bulk SMS, lookups, installs, payments, telemarketing,
large first payments, family abroad, work meetings) draws from the city's generator as the first simulated
city did; the family's further confounders (`Life`) draw from a generator of their own, so a family without
them reproduces that city exactly. Some confounders are episodes of ordinary life spread over hours or days
(a new landlord calling for days, an agent's call and then a deposit): they wait in a heap until their slice.
"""
from __future__ import annotations

import heapq
from typing import Callable, Iterator

import numpy as np

from schemas.records import DomainSignal, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS, HOUR_MS, MINUTE_MS
from scorers.lab.city.family import Life
from scorers.lab.city.population import Population, phone_of, second_phone_of

SLICE_MS = 15 * MINUTE_MS

# Share of each hour's traffic (quiet nights, busy days); sums to 24.
DIURNAL = np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.2, 1.5, 1.5, 1.4, 1.4,
                    1.4, 1.3, 1.4, 1.4, 1.4, 1.5, 1.6, 1.7, 1.6, 1.3, 0.9, 0.5])
DIURNAL = DIURNAL * 24 / DIURNAL.sum()

LEGIT_APPS = [f"com.legit.app{k}" for k in range(200)] + ["com.tencent.mm", "com.eg.android.AlipayGphone"]
MEETING_APPS = ["com.tencent.wemeet.app", "us.zoom.videomeetings"]
REMOTE_SUPPORT_APPS = ["com.teamviewer.teamviewer.market.mobile", "com.anydesk.anydeskandroid",
                       "com.tencent.wemeet.app", "com.oray.sunlogin"]
FAMILY_ABROAD = ["+447700900123", "+14155550123", "+61491570156", "+81312345678"]
ABROAD_PREFIXES = ["+1415", "+4420", "+6591", "+8522", "+8869", "+6012"]
VIRTUAL_PREFIXES = ["+86170", "+86171", "+86162", "+86165", "+86167"]
ORDINARY_PREFIXES = ["+86139", "+86186", "+86158", "+86177", "+86199"]

Record = tuple[str, object]


def _zipf(rng: np.random.Generator, n: int, size: int, a: float = 1.3) -> np.ndarray:
    return np.minimum(rng.zipf(a, size) - 1, n - 1)


class Traffic:
    """Everything ordinary residents do, slice by slice, as contract records in event-time order."""

    def __init__(self, pop: Population, rng: np.random.Generator, life: Life | None = None,
                 extra_rng: np.random.Generator | None = None) -> None:
        self.pop = pop
        self.rng = rng
        self.life = life or Life()
        self.xr = extra_rng if extra_rng is not None else np.random.default_rng(0)
        self.n = 0
        self.rates = {"call": self.life.calls, "sms": self.life.sms, "dns": self.life.dns,
                      "install": self.life.installs, "pay": self.life.payments,
                      "telemarketing": self.life.telemarketing, "big_payment": self.life.large_first_payments}
        self.later: list[tuple[int, int, str, object]] = []  # ordinary episodes' records waiting for their slice
        self.friends = self._outside_friends()
        self.large_legit: list[str] = []  # transfer ids of large legitimate first payments (ground truth)

    def _id(self) -> str:
        self.n += 1
        return f"s{self.n}"

    def _outside_friends(self) -> np.ndarray:
        """Each resident's contacts outside the city: numbers new to the pipeline at first, some virtual-operator."""
        k, n = self.life.outside_friends, self.pop.n
        if k == 0:
            return np.empty((n, 0), dtype=object)
        virtual = self.xr.random((n, k)) < self.life.mvno_friend_share
        digits = self.xr.integers(0, 10**8, (n, k))
        prefix = self.xr.integers(0, len(VIRTUAL_PREFIXES), (n, k))
        out = np.empty((n, k), dtype=object)
        for i in range(n):
            for j in range(k):
                pre = VIRTUAL_PREFIXES[prefix[i, j]] if virtual[i, j] else ORDINARY_PREFIXES[prefix[i, j]]
                out[i, j] = f"{pre}{digits[i, j]:08d}"
        return out

    def slice(self, start: int) -> Iterator[Record]:
        """The ordinary records of one 15-minute slice starting at `start` (sorted by the caller)."""
        rng, pop = self.rng, self.pop
        hour = int((start // HOUR_MS + 8) % 24)  # local time, UTC+8
        frac = SLICE_MS / DAY_MS * DIURNAL[hour]
        for kind, rate in self.rates.items():
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
        yield from self._life_confounders(start, frac)
        while self.later and self.later[0][0] < start + SLICE_MS:
            _, _, topic, rec = heapq.heappop(self.later)
            yield topic, rec

    def _line(self, i: int, r: float) -> str:
        return second_phone_of(i) if self.pop.second_line[i] and r < 0.3 else phone_of(i)

    def _call(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        rng, pop = self.rng, self.pop
        pick = rng.integers(0, 12, len(who))
        business = rng.random(len(who)) < 0.15
        biz = _zipf(rng, 2000, len(who))
        dur = rng.exponential(150, len(who)).astype(int)
        outgoing = rng.random(len(who)) < 0.5
        r = rng.random(len(who))
        mistag = self._mistagged(len(who))
        for k, i in enumerate(who.tolist()):
            other = f"400{biz[k]:07d}" if business[k] else phone_of(int(pop.contacts[i, pick[k]]))
            tags = ["spoof_suspect"] if mistag[k] and not outgoing[k] else []
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=int(ts[k]), kind="call", direction="out" if outgoing[k] else "in",
                subscriber=self._line(i, r[k]), counterpart=other, duration_s=int(dur[k]), counterpart_tags=tags)

    def _mistagged(self, n: int) -> np.ndarray:
        """Which of n ordinary calls the operator wrongly tags as spoofed."""
        if self.life.spoof_false_tag_rate <= 0:
            return np.zeros(n, dtype=bool)
        return self.xr.random(n) < self.life.spoof_false_tag_rate

    def _sms(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        rng = self.rng
        sender = _zipf(rng, 3000, len(who))
        with_url = rng.random(len(who)) < 0.25
        site = _zipf(rng, 5000, len(who), 1.2)
        for k, i in enumerate(who.tolist()):
            urls = [f"https://m.site{site[k]}.com.cn/p/{k % 97}"] if with_url[k] else []
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=int(ts[k]), kind="sms", direction="in", subscriber=phone_of(i),
                counterpart=f"10690{sender[k]:08d}", urls=urls)

    def _dns(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        rng = self.rng
        site = _zipf(rng, 5000, len(who), 1.2)
        new_site = rng.random(len(who)) < self.life.new_site_share  # a brand-new but legitimate site
        for k, i in enumerate(who.tolist()):
            domain = f"new{rng.integers(10**6)}.shop.cn" if new_site[k] else f"site{site[k]}.com.cn"
            yield "signals.domain", DomainSignal(event_id=self._id(), ts=int(ts[k]), subscriber=phone_of(i),
                                                 kind="dns", domain=domain)

    def _install(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        pick = self.rng.integers(0, len(LEGIT_APPS), len(who))
        for k, i in enumerate(who.tolist()):
            yield "signals.domain", DomainSignal(event_id=self._id(), ts=int(ts[k]), subscriber=phone_of(i),
                                                 kind="app_install", app=LEGIT_APPS[pick[k]])

    def _pay(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        rng, pop = self.rng, self.pop
        merchant = _zipf(rng, 3000, len(who))
        to_person = rng.random(len(who)) < 0.3
        amount = (rng.lognormal(8.5, 1.2, len(who))).astype(int) + 100
        new_payee = (self.xr.random(len(who)) < self.life.first_payee_share if self.life.first_payee_share > 0
                     else np.zeros(len(who), dtype=bool))
        for k, i in enumerate(who.tolist()):
            payer = pop.accounts_of(i)[0]
            payee = pop.accounts_of(int(pop.contacts[i, k % 12]))[0] if to_person[k] else f"6225{merchant[k]:012d}"
            if new_payee[k]:  # a shop or a person this payer never paid: the bank says so
                payee = f"6228{int(self.xr.integers(10**12)):012d}"
            yield from _transfer(self._id, int(ts[k]), payer, payee, int(amount[k]), phone_of(i),
                                 first_seen=bool(new_payee[k]))

    def _telemarketing(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        rng, life = self.rng, self.life
        caller = rng.integers(0, 5000, len(who))
        long_call = rng.random(len(who)) < life.telemarketing_long_share  # some listen long, and nothing happens
        dur = np.where(long_call, rng.integers(300, 1200, len(who)), rng.integers(0, 60, len(who)))
        virtual = (self.xr.random(len(who)) < life.telemarketing_virtual_share if life.telemarketing_virtual_share > 0
                   else np.zeros(len(who), dtype=bool))
        for k, i in enumerate(who.tolist()):
            number = f"95{caller[k]:04d}" if caller[k] % 3 else f"0755{caller[k]:08d}"
            tags: list[str] = []
            if virtual[k]:
                number, tags = f"{VIRTUAL_PREFIXES[caller[k] % 5]}{caller[k] * 7919 % 10**8:08d}", ["virtual_operator"]
            yield "signals.telecom", TelecomSignal(
                event_id=self._id(), ts=int(ts[k]), kind="call", direction="in", subscriber=phone_of(i),
                counterpart=number, duration_s=int(dur[k]), counterpart_tags=tags)

    def _big_payment(self, who: np.ndarray, ts: np.ndarray) -> Iterator[Record]:
        """A legitimate large first payment to a new payee: a car, a deposit, a new landlord."""
        amount = self.rng.integers(3_000_000, 20_000_000, len(who))
        for k, i in enumerate(who.tolist()):
            payee = f"6230{i:08d}{k % 10:04d}"
            yield from self._large(int(ts[k]), i, payee, int(amount[k]), "counter")

    def _large(self, ts: int, i: int, payee: str, amount: int, channel: str) -> Iterator[Record]:
        records = list(_transfer(self._id, ts, self.pop.accounts_of(i)[0], payee, amount, phone_of(i),
                                 first_seen=True, channel=channel))
        if amount >= 1_000_000:  # ¥10,000 and more: a stop-payment here would hurt (the evaluation counts them)
            self.large_legit.append(records[0][1].transfer_id)  # type: ignore[attr-defined]
        yield from records

    def _confounders(self, start: int, frac: float) -> Iterator[Record]:
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

    # -- the family's further confounders, from their own generator ------------------------------------------

    def _who(self, rate: float, frac: float) -> list[int]:
        if rate <= 0:
            return []
        return np.repeat(np.arange(self.pop.n), self.xr.poisson(rate * frac, self.pop.n)).tolist()

    def _at(self, start: int) -> int:
        return start + int(self.xr.integers(SLICE_MS))

    def _later(self, ts: int, topic: str, rec: object) -> None:
        heapq.heappush(self.later, (ts, self.n, topic, rec))

    def _new_number(self, virtual_share: float) -> tuple[str, list[str]]:
        """A number the resident never saw; virtual-operator ones mostly carry the operator's tag."""
        xr = self.xr
        if xr.random() < virtual_share:
            tags = ["virtual_operator"] if xr.random() < 0.9 else []
            return f"{VIRTUAL_PREFIXES[int(xr.integers(5))]}{int(xr.integers(10**8)):08d}", tags
        return f"{ORDINARY_PREFIXES[int(xr.integers(5))]}{int(xr.integers(10**8)):08d}", []

    def _tel(self, ts: int, line: str, other: str, kind: str = "call", direction: str = "in", duration: int = 0,
             tags: list[str] | None = None, urls: list[str] | None = None) -> TelecomSignal:
        return TelecomSignal(event_id=self._id(), ts=ts, kind=kind, direction=direction,  # type: ignore[arg-type]
                             subscriber=line, counterpart=other, duration_s=duration if kind == "call" else 0,
                             urls=urls or [], counterpart_tags=tags or [])

    def _visit(self, ts: int, i: int, domain: str) -> DomainSignal:
        return DomainSignal(event_id=self._id(), ts=ts, subscriber=phone_of(i), kind="http", domain=domain,
                            url=f"https://{domain}/")

    def _life_confounders(self, start: int, frac: float) -> Iterator[Record]:
        life = self.life
        steps: list[tuple[float, Callable[[int, int], Iterator[Record]]]] = [
            (life.platform_calls, self._platform_call), (life.unknown_link_sms, self._unknown_link),
            (life.service_link_sms, self._service_link), (life.new_acquaintances, self._acquaintance),
            (life.remote_support, self._remote_support), (life.deals, self._deal), (life.refunds, self._refund),
            (life.international_calls, self._international)]
        if life.outside_friends:
            steps.append((0.35 * life.outside_friends, self._friend_call))
        for rate, make in steps:
            for i in self._who(rate, frac):
                yield from make(i, self._at(start))

    def _platform_call(self, i: int, t: int) -> Iterator[Record]:
        """A courier, a rider or a driver: a short call from a privacy number used for this order only."""
        number, tags = self._new_number(self.life.platform_virtual_share)
        yield "signals.telecom", self._tel(t, phone_of(i), number, duration=int(self.xr.integers(8, 120)), tags=tags)

    def _friend_call(self, i: int, t: int) -> Iterator[Record]:
        """A friend or relative outside the city: the same few numbers, calls of any length."""
        friend = self.friends[i, int(self.xr.integers(self.life.outside_friends))]
        tags = ["virtual_operator"] if friend.startswith(tuple(VIRTUAL_PREFIXES)) else []
        out = self.xr.random() < 0.5
        yield "signals.telecom", self._tel(t, phone_of(i), friend, direction="out" if out else "in",
                                           duration=int(self.xr.exponential(240)), tags=[] if out else tags)

    def _link_sms(self, i: int, t: int, sender: str, domain: str, tags: list[str]) -> Iterator[Record]:
        yield "signals.telecom", self._tel(t, phone_of(i), sender, kind="sms", tags=tags,
                                           urls=[f"https://{domain}/p/{int(self.xr.integers(10**6))}"])
        if self.xr.random() < self.life.link_follow_share:
            visit = t + int(self.xr.integers(MINUTE_MS, 15 * MINUTE_MS))
            self._later(visit, "signals.domain", self._visit(visit, i, domain))

    def _unknown_link(self, i: int, t: int) -> Iterator[Record]:
        """Marketing or a second-hand seller: a link from a mobile number never seen, to a site never visited."""
        number, tags = self._new_number(0.4)
        yield from self._link_sms(i, t, number, f"shop{int(self.xr.integers(10**6))}.cn", tags)

    def _service_link(self, i: int, t: int) -> Iterator[Record]:
        """A bank, courier or government notice with a link, from a service number."""
        k = int(_zipf(self.xr, 300, 1)[0])
        sender = f"95{500 + k:03d}" if k % 2 else f"12{300 + k:03d}"
        yield from self._link_sms(i, t, sender, f"m.service{k}.com.cn", [])

    def _acquaintance(self, i: int, t: int) -> Iterator[Record]:
        """A new landlord, agent or colleague: a new number that calls again on the following days."""
        number, tags = self._new_number(0.3)
        day = t
        for _ in range(int(self.xr.integers(2, 6))):
            long = self.xr.random() < self.life.acquaintance_long_share
            dur = int(self.xr.integers(600, 3000)) if long else int(self.xr.integers(30, 300))
            self._later(day, "signals.telecom", self._tel(day, phone_of(i), number, duration=dur, tags=tags))
            day += int(self.xr.integers(16 * HOUR_MS, 32 * HOUR_MS))
        return iter(())

    def _remote_support(self, i: int, t: int) -> Iterator[Record]:
        """A bank's or an operator's support line walks the resident through a remote or meeting app, on the call."""
        if self.xr.random() < 0.6:
            number, tags = f"95{int(self.xr.integers(500, 600))}", []
        else:
            number, tags = self._new_number(0.3)
        dur = int(self.xr.integers(600, 2400))
        yield "signals.telecom", self._tel(t, phone_of(i), number, duration=dur, tags=tags)
        install = t + int(self.xr.integers(2 * MINUTE_MS, max(3 * MINUTE_MS, dur * 1000 // 2)))
        app = REMOTE_SUPPORT_APPS[int(self.xr.integers(len(REMOTE_SUPPORT_APPS)))]
        self._later(install, "signals.domain", DomainSignal(event_id=self._id(), ts=install, subscriber=phone_of(i),
                                                            kind="app_install", app=app))

    def _deal(self, i: int, t: int) -> Iterator[Record]:
        """An agent or a seller calls; hours later a first transfer to a new payee: a deposit, a purchase."""
        number, tags = self._new_number(0.3)
        yield "signals.telecom", self._tel(t, phone_of(i), number, direction="out" if self.xr.random() < 0.4 else "in",
                                           duration=int(self.xr.integers(120, 900)), tags=tags)
        pay = t + int(self.xr.integers(10 * MINUTE_MS, 6 * HOUR_MS))
        amount = int(self.xr.choice([50_000, 200_000, 500_000, 1_000_000, 3_000_000]) * self.xr.uniform(0.8, 1.5))
        payee = f"6229{int(self.xr.integers(10**12)):012d}"
        for rec in self._large(pay, i, payee, amount, "mobile"):
            self._later(rec[1].ts, *rec)  # type: ignore[attr-defined]

    def _refund(self, i: int, t: int) -> Iterator[Record]:
        """A refund or a red packet: a small transfer in from an account never seen."""
        payer = f"6226{int(self.xr.integers(10**12)):012d}"
        yield from _transfer(self._id, t, payer, self.pop.accounts_of(i)[0], int(self.xr.integers(500, 10_000)),
                             None, first_seen=None, channel="third_party")

    def _international(self, i: int, t: int) -> Iterator[Record]:
        """A business call from abroad."""
        number = f"{ABROAD_PREFIXES[int(self.xr.integers(len(ABROAD_PREFIXES)))]}{int(self.xr.integers(10**7)):07d}"
        yield "signals.telecom", self._tel(t, phone_of(i), number, duration=int(self.xr.integers(30, 1800)),
                                           tags=["international"])


def _transfer(next_id, ts: int, payer: str, payee: str, amount: int, phone: str | None,  # type: ignore[no-untyped-def]
              first_seen: bool | None, channel: str = "mobile", held: bool = False) -> Iterator[Record]:
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
