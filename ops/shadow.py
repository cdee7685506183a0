"""A candidate's would-be decisions beside the live ones: who each side warns, at which tier, which transfers it
stops, and, where outcomes say whether a person was being defrauded, how often each side was right."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from schemas.internal import Decision
from schemas.records import OUTCOME_LABELS as LABELS
from schemas.records import TIER_RANK, Outcome


@dataclass(frozen=True)
class Side:
    """What one side decided in the period: persons warned (by highest tier), transfers stopped, and precision
    over the warned persons an outcome labels."""

    version: str
    warned: int
    by_tier: dict[str, int]
    stops: int
    labelled: int
    right: int

    @property
    def precision(self) -> float | None:
        """Share of labelled warned persons who were being defrauded (None: no label)."""
        return round(self.right / self.labelled, 4) if self.labelled else None


@dataclass(frozen=True)
class ShadowReport:
    """The live side and the candidate's, and where they differ (persons and transfers, sorted)."""

    since: int | None
    until: int | None
    live: Side
    candidate: Side
    added: list[str] = field(default_factory=list)  # persons only the candidate warns
    removed: list[str] = field(default_factory=list)  # persons only the live side warns
    changed_tier: list[tuple[str, str, str]] = field(default_factory=list)  # (person, live tier, candidate tier)
    stops_added: list[str] = field(default_factory=list)
    stops_removed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, with each side's precision."""
        doc = asdict(self)
        for side in ("live", "candidate"):
            doc[side]["precision"] = getattr(self, side).precision
        return doc


def in_period(decisions: Iterable[Decision], since: int | None, until: int | None) -> list[Decision]:
    """The decisions of event time in [since, until), each id once (a shadow run repeated writes them again)."""
    seen: dict[str, Decision] = {}
    for d in decisions:
        if (since is None or d.ts >= since) and (until is None or d.ts < until):
            seen.setdefault(d.decision_id, d)
    return list(seen.values())


def warned_tiers(decisions: Iterable[Decision]) -> dict[str, str]:
    """Each warned person's highest tier (a warning is a decision whose tier rose)."""
    tiers: dict[str, str] = {}
    for d in decisions:
        if d.rose and TIER_RANK[d.tier] > TIER_RANK[tiers.get(d.person)]:
            tiers[d.person] = d.tier
    return tiers


def stopped(decisions: Iterable[Decision]) -> set[str]:
    """The transfers a side asked the banks to stop (every transfer decided at T1)."""
    return {d.transfer.transfer_id for d in decisions if d.tier == "T1" and d.transfer is not None}


def person_labels(decisions: Iterable[Decision], outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Whether each person an outcome speaks of was being defrauded: the latest labelling outcome of each
    warning, and a person is 1 when any of their warnings says so."""
    person_of = {d.decision_id: d.person for d in decisions}
    latest: dict[str, Outcome] = {}
    for o in outcomes:
        if o.outcome in LABELS and o.warning_id in person_of:
            if o.warning_id not in latest or o.ts >= latest[o.warning_id].ts:
                latest[o.warning_id] = o
    labels: dict[str, int] = {}
    for wid, o in latest.items():
        person = person_of[wid]
        labels[person] = max(labels.get(person, 0), LABELS[o.outcome])
    return labels


def compare(live: Iterable[Decision], candidate: Iterable[Decision], outcomes: Iterable[Outcome],
            since: int | None = None, until: int | None = None) -> ShadowReport:
    """The report of one period: live and candidate decisions of that event time, the outcomes on any of them."""
    live_d, cand_d = in_period(live, since, until), in_period(candidate, since, until)
    labels = person_labels([*live_d, *cand_d], outcomes)
    live_t, cand_t = warned_tiers(live_d), warned_tiers(cand_d)
    live_s, cand_s = stopped(live_d), stopped(cand_d)

    def side(decisions: list[Decision], tiers: dict[str, str], stops: set[str]) -> Side:
        versions = sorted({f"{d.model_version}/{d.policy_version}" for d in decisions})
        by_tier = {t: sum(1 for v in tiers.values() if v == t) for t in ("T1", "T2", "T3")}
        known = [labels[p] for p in tiers if p in labels]
        return Side(", ".join(versions) or "–", len(tiers), by_tier, len(stops), len(known), sum(known))

    both = live_t.keys() & cand_t.keys()
    return ShadowReport(
        since, until, side(live_d, live_t, live_s), side(cand_d, cand_t, cand_s),
        added=sorted(cand_t.keys() - live_t.keys()), removed=sorted(live_t.keys() - cand_t.keys()),
        changed_tier=sorted((p, live_t[p], cand_t[p]) for p in both if live_t[p] != cand_t[p]),
        stops_added=sorted(cand_s - live_s), stops_removed=sorted(live_s - cand_s))
