"""Tiers: from a score and the evidence to T1/T2/T3, with hysteresis, under a versioned policy file.

    T1  loss imminent or under way: a transfer just initiated to a payee named in a case, or to a new payee
        right after a scam script (scorers/script.py): of `t1.script_stages` stages in one session, or of two
        by a person the model suspects (score ≥ t1) or who is at T2 already → phone now, visit, stop-payment
    T2  strong signs, no money moved: score ≥ t2 and a script of at least `t2.min_stages` stages (or a case
        element contacted and one stage) → phone within the hour, visit within 24 h
    T3  contact with a case element of confidence ≥ t3.hit_confidence, or weak signs (score ≥ t3) → SMS reminder

Acting costs (a stop-payment stops someone's rent; a visit takes a grid worker's afternoon), so no single weak
signal lifts anyone to T1 or T2 by itself, whatever the score: T1 needs the transfer tied to fraud, T2 a
conjunction.

A person's tier only rises while evidence keeps coming; it is released after `quiet_hours` without any
(event time). So a score that wobbles around a threshold never warns the same person twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.internal import RiskState
from schemas.records import TIER_RANK
from schemas.units import MINUTE_MS

POLICY_FILE = Path(__file__).parent / "policy" / "tiers.json"
MAX_STOPPED = 8  # transfers a person's state remembers having asked to stop (a few are in their window at once)


class PolicyError(ValueError):
    """The tier policy file is not valid; the message says what is wrong."""


@dataclass(frozen=True)
class TierPolicy:
    """The thresholds of the tiers (one versioned file)."""

    version: str
    t1_score: float
    t1_transfer_window_ms: int
    t1_script_stages: int
    t2_score: float
    t2_min_stages: int
    t3_score: float
    t3_hit_confidence: float
    quiet_ms: int
    respond_ms: dict[str, int]

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "TierPolicy":
        """Validate and build a policy from its JSON document."""
        try:
            policy = cls(version=str(doc["version"]), t1_score=float(doc["t1"]["score"]),
                         t1_transfer_window_ms=int(doc["t1"]["transfer_window_minutes"]) * MINUTE_MS,
                         t1_script_stages=int(doc["t1"].get("script_stages", 3)),
                         t2_score=float(doc["t2"]["score"]), t2_min_stages=int(doc["t2"].get("min_stages", 2)),
                         t3_score=float(doc["t3"]["score"]),
                         t3_hit_confidence=float(doc["t3"]["hit_confidence"]),
                         quiet_ms=int(doc["hysteresis"]["quiet_hours"]) * 60 * MINUTE_MS,
                         respond_ms={t: int(m) * MINUTE_MS for t, m in doc["respond_minutes"].items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"tier policy: missing or invalid {exc}") from None
        if not 0 < policy.t3_score <= policy.t2_score <= 1 or not 0 < policy.t1_score <= 1:
            raise PolicyError("tier policy: need 0 < t3.score <= t2.score <= 1 and 0 < t1.score <= 1")
        if set(policy.respond_ms) != {"T1", "T2", "T3"}:
            raise PolicyError("tier policy: respond_minutes needs T1, T2 and T3")
        return policy

    def to_dict(self) -> dict[str, Any]:
        """The policy as its JSON document (what `from_dict` reads)."""
        return {"version": self.version,
                "t1": {"score": self.t1_score, "transfer_window_minutes": self.t1_transfer_window_ms // MINUTE_MS,
                       "script_stages": self.t1_script_stages},
                "t2": {"score": self.t2_score, "min_stages": self.t2_min_stages},
                "t3": {"score": self.t3_score, "hit_confidence": self.t3_hit_confidence},
                "hysteresis": {"quiet_hours": self.quiet_ms // (60 * MINUTE_MS)},
                "respond_minutes": {t: ms // MINUTE_MS for t, ms in self.respond_ms.items()}}

    @classmethod
    def load(cls, path: Path = POLICY_FILE) -> "TierPolicy":
        """The policy from its file (default: scorers/policy/tiers.json)."""
        return cls.from_dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class Evidence:
    """What this moment shows besides the score."""

    transfer_now: bool = False  # this event initiated an outgoing transfer
    transfer_to_new_payee: bool = False
    payee_flagged: bool = False  # the payee account is a case element
    strong_hit: bool = False  # contact with a case element of high confidence, within the window
    stages: int = 0  # the distinct stages of a scam script within hours (scorers/script.py)
    transfer_after_stages: int = 0  # the most stages of one session within the hours before the transfer
    news: bool = True  # False: the moment only took evidence away (a retraction): it may release, never raise


@dataclass(frozen=True)
class TierDecision:
    """The tier now, whether it rose, whether a stop-payment is due, and the state to remember."""

    tier: str | None
    rose: bool
    stop_payment: bool
    risk: RiskState | None


def computed_tier(score: float, ev: Evidence, held: str | None, policy: TierPolicy) -> str | None:
    """The tier this moment alone justifies (no hysteresis)."""
    if ev.transfer_now and (ev.payee_flagged or (ev.transfer_to_new_payee and (
            ev.transfer_after_stages >= policy.t1_script_stages
            or (ev.transfer_after_stages >= 2 and (score >= policy.t1_score or TIER_RANK[held] >= TIER_RANK["T2"]))))):
        return "T1"
    if score >= policy.t2_score and (ev.stages >= policy.t2_min_stages or (ev.strong_hit and ev.stages >= 1)):
        return "T2"
    if ev.strong_hit or score >= policy.t3_score:
        return "T3"
    return None


def assign_tier(score: float, ev: Evidence, prior: RiskState | None, now: int, policy: TierPolicy,
                episode_start: int | None = None, transfer_id: str | None = None) -> TierDecision:
    """The person's tier after this moment: it rises with evidence and is held until a quiet period passes.

    `episode_start` names a new episode (default: now); the caller passes the earliest evidence in the window,
    which does not depend on the order in which the evidence arrived. Evidence time only moves forward.
    `transfer_id` names the transfer in progress: a stop-payment is asked once per transfer, though every
    moment within its window (the transfer itself, then a hit on its payee) may justify T1 again.
    """
    held = prior.tier if prior is not None and now - prior.last_evidence_ts <= policy.quiet_ms else None
    # A moment without news is no evidence: whatever the score, it neither raises nor holds anyone longer.
    now_tier = computed_tier(score, ev, held, policy) if ev.news else None
    tier = now_tier if TIER_RANK[now_tier] > TIER_RANK[held] else held
    if tier is None:
        return TierDecision(None, False, False, None)
    if held is not None and prior is not None:
        episode_ts, decided = prior.episode_ts, prior.decided
        last = max(prior.last_evidence_ts, now) if now_tier is not None else prior.last_evidence_ts
    else:
        episode_ts, decided, last = min(now, episode_start if episode_start is not None else now), [], now
    stopped = prior.stopped if prior is not None else []
    stop = now_tier == "T1" and (transfer_id is None or transfer_id not in stopped)
    if stop and transfer_id is not None:
        stopped = (stopped + [transfer_id])[-MAX_STOPPED:]
    return TierDecision(tier, TIER_RANK[tier] > TIER_RANK[held], stop,
                        RiskState(tier=tier, episode_ts=episode_ts, last_evidence_ts=last, decided=list(decided),
                                  stopped=list(stopped)))
