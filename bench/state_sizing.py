"""Sizing of the streaming core's state: person states, the contact index, and changelog bytes written per event.

Runs the real pure stages (`apply_event`, `add_contact`) over synthetic city traffic in event-time order and
measures the msgspec-encoded sizes that the Faust tables store and write to their changelogs. Extrapolates to a
city of 2M people. Usage:

    .venv/bin/python -m bench.state_sizing --people 5000 --days 3
"""
from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import time
from collections import Counter
from typing import Iterator

import msgspec

from schemas.internal import PersonEvent
from schemas.records import DomainSignal, PaymentSignal, TelecomSignal
from schemas.units import DAY_MS
from streams.person_state import StatePolicy, apply_event, encode_state, new_state
from streams.value_index import Entry, IndexPolicy, ValueHead, add_contact, encode_entry, encode_head, entry_key

T0 = 1_764_547_200_000

# Daily volumes per person, roughly what an operator and a bank see for an average resident.
CALLS_PER_DAY = 8
SMS_PER_DAY = 5
DNS_PER_DAY = 40
INSTALLS_PER_DAY = 0.05
PAYMENTS_PER_DAY = 1.5


def _zipf_picker(rng: random.Random, n: int, s: float = 1.1):  # type: ignore[no-untyped-def]
    weights = [1 / (k + 1) ** s for k in range(n)]
    cum = list(__import__("itertools").accumulate(weights))
    total = cum[-1]
    import bisect

    return lambda: bisect.bisect_left(cum, rng.random() * total)


def traffic(people: int, days: int, seed: int) -> Iterator[PersonEvent]:
    """Synthetic person events in event-time order: each person has friends, plus shared businesses and sites."""
    rng = random.Random(seed)
    domain_pick = _zipf_picker(rng, 20_000)
    business_pick = _zipf_picker(rng, 2_000)
    friends = {p: [f"+86137{rng.randrange(10**8):08d}" for _ in range(15)] for p in range(people)}
    heap: list[tuple[int, int, int, str]] = []
    rates = {"call": CALLS_PER_DAY, "sms": SMS_PER_DAY, "dns": DNS_PER_DAY, "app": INSTALLS_PER_DAY,
             "pay": PAYMENTS_PER_DAY}
    for p in range(people):
        for kind, rate in rates.items():
            heapq.heappush(heap, (T0 + int(rng.expovariate(rate / DAY_MS)), p, len(heap), kind))
    end = T0 + days * DAY_MS
    n = 0
    while heap:
        ts, p, _, kind = heapq.heappop(heap)
        if ts >= end:
            continue
        heapq.heappush(heap, (ts + int(rng.expovariate(rates[kind] / DAY_MS)) + 1, p, n, kind))
        n += 1
        line = f"+86138{p:08d}"
        eid = f"e{n}"
        if kind == "call":
            other = rng.choice(friends[p]) if rng.random() < 0.8 else f"+86400{business_pick():07d}"
            rec = TelecomSignal(event_id=eid, ts=ts, kind="call", direction=rng.choice(["in", "out"]),
                                subscriber=line, counterpart=other, duration_s=int(rng.expovariate(1 / 120)))
            yield PersonEvent(person=line, source="signals.telecom", telecom=rec)
        elif kind == "sms":
            urls = [f"http://d{domain_pick()}.example.cn/x"] if rng.random() < 0.3 else []
            rec = TelecomSignal(event_id=eid, ts=ts, kind="sms", direction="in", subscriber=line,
                                counterpart=f"10690{business_pick():08d}", urls=urls)
            yield PersonEvent(person=line, source="signals.telecom", telecom=rec)
        elif kind == "dns":
            dom = DomainSignal(event_id=eid, ts=ts, subscriber=line, kind="dns", domain=f"d{domain_pick()}.example.cn")
            yield PersonEvent(person=line, source="signals.domain", domain=dom)
        elif kind == "app":
            dom = DomainSignal(event_id=eid, ts=ts, subscriber=line, kind="app_install", app=f"com.app{domain_pick()}")
            yield PersonEvent(person=line, source="signals.domain", domain=dom)
        else:
            pay = PaymentSignal(event_id=eid, ts=ts, transfer_id=eid, status="completed", payer_account=f"A{p}",
                                payee_account=f"M{business_pick()}" if rng.random() < 0.7 else f"A{rng.randrange(people)}",
                                payee_bank="B", amount_fen=int(rng.expovariate(1 / 20_000)), channel="mobile")
            yield PersonEvent(person=line, source="signals.payment", payment=pay)


class CountingEntries(dict[str, Entry]):
    """A value's entries that count what a table would write to its changelog (key and value bytes)."""

    def __init__(self, value_key: str) -> None:
        super().__init__()
        self.value_key = value_key
        self.writes = 0
        self.bytes = 0

    def __setitem__(self, person: str, entry: Entry) -> None:
        self.writes += 1
        self.bytes += len(entry_key(self.value_key, person)) + len(encode_entry(entry))
        super().__setitem__(person, entry)


def _pct(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0


def measure(people: int, days: int, seed: int, max_people: int) -> dict[str, object]:
    """Run the stages over the traffic and return the sizes (bytes) and counts."""
    state_policy, index_policy = StatePolicy(), IndexPolicy(max_people=max_people)
    persons: dict[str, object] = {}
    values: dict[str, tuple[ValueHead, CountingEntries]] = {}
    events = contacts = event_bytes = 0
    person_writes = person_bytes_written = value_writes = value_bytes_written = overflows = 0
    kinds: Counter[str] = Counter()
    elapsed = 0.0
    for ev in traffic(people, days, seed):
        events += 1
        event_bytes += len(msgspec.json.encode(ev))
        t0 = time.perf_counter()
        state = persons.get(ev.person) or new_state(ev.person)
        persons[ev.person] = state
        up = apply_event(state, ev, state_policy)  # type: ignore[arg-type]
        elapsed += time.perf_counter() - t0
        if up.changed:  # what the agent writes to the table and its changelog
            person_writes += 1
            person_bytes_written += len(encode_state(state))  # type: ignore[arg-type]
        for c in up.contacts:
            contacts += 1
            kinds[c.value_key.split(":", 1)[0]] += 1
            t0 = time.perf_counter()
            head, entries = values.get(c.value_key) or values.setdefault(c.value_key,
                                                                          (ValueHead(), CountingEntries(c.value_key)))
            vu = add_contact(head, entries, c, index_policy, track_fanout=c.value_key.startswith("phone:"))
            elapsed += time.perf_counter() - t0
            overflows += vu.overflow
            if vu.head_changed:
                value_writes += 1
                value_bytes_written += len(c.value_key) + len(encode_head(head))
    p_sizes = [len(encode_state(s)) for s in persons.values()]  # type: ignore[arg-type]
    v_sizes = [len(k) + len(encode_head(h)) + sum(len(entry_key(k, p)) + len(encode_entry(e)) for p, e in es.items())
               for k, (h, es) in values.items()]
    total_entries = sum(len(es) for _, es in values.values())
    value_writes += sum(es.writes for _, es in values.values())
    value_bytes_written += sum(es.bytes for _, es in values.values())
    scale = 2_000_000 / people
    return {
        "people": people, "days": days, "events": events, "events_per_person_day": round(events / people / days, 1),
        "pure_stage_events_per_s": round(events / elapsed),
        "writes_per_event": {"persons": round(person_writes / events, 3), "values": round(value_writes / events, 3)},
        "contacts_per_event": round(contacts / events, 2), "contacts_not_listed_saturated": overflows,
        "person_event_bytes_mean": round(event_bytes / events),
        "person_state_bytes": {"mean": round(statistics.mean(p_sizes)), "p99": _pct(p_sizes, 0.99),
                               "max": max(p_sizes)},
        "values": len(values), "values_saturated": sum(1 for h, _ in values.values() if len(h.people) >= max_people),
        "index_entries": total_entries,
        "index_entries_per_person": round(total_entries / people, 1),
        "index_bytes_per_entry": round(sum(v_sizes) / max(1, total_entries), 1),
        "value_bytes_with_entries": {"mean": round(statistics.mean(v_sizes)), "p99": _pct(v_sizes, 0.99),
                              "max": max(v_sizes)},
        "contacts_by_kind": dict(kinds),
        "changelog_bytes_per_event": {"persons": round(person_bytes_written / events),
                                      "values": round(value_bytes_written / events)},
        "city_2m_extrapolated": {
            "person_states_GB": round(sum(p_sizes) * scale / 1e9, 2),
            "index_GB": round(sum(v_sizes) * scale / 1e9, 2),
            "changelog_writes_GB_per_day": round((person_bytes_written + value_bytes_written) * scale / days / 1e9, 1),
            "events_per_day_M": round(events * scale / days / 1e6, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-people", type=int, default=IndexPolicy().max_people)
    args = parser.parse_args()
    print(json.dumps(measure(args.people, args.days, args.seed, args.max_people), indent=2))


if __name__ == "__main__":
    main()
