"""Which outcomes complete a step, and which fail it (and escalate at once)."""
from __future__ import annotations

import pytest

from dispatch.escalation import outcome_effect
from schemas.records import OutcomeKind


@pytest.mark.parametrize("outcome", OutcomeKind.__args__)  # type: ignore[attr-defined]
def test_every_contract_outcome_has_an_effect(outcome: str) -> None:
    expected = "failed" if outcome in ("sms_failed", "call_refused", "unreachable") else "done"
    assert outcome_effect(outcome) == expected


def test_unknown_outcome_does_nothing() -> None:
    assert outcome_effect("maybe") is None
