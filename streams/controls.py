"""Indicator value keys and multi-card control (一人一卡涉案、多行多卡管控), as pure functions."""
from __future__ import annotations

from schemas.internal import ControlNote, PersonEvent
from schemas.records import AccountInterception, Indicator, Subject


def indicator_value_key(indicator: Indicator) -> str:
    """The contact-index key an (already normalised) indicator matches: a URL indicator matches its domain."""
    kind = "domain" if indicator.type == "url" else indicator.type
    return f"{kind}:{indicator.value}"


def account_controls(indicator: Indicator, owner: Subject) -> list[AccountInterception]:
    """When one card of a registered person is in a case, a control for every account of theirs, across banks."""
    reason = (f"一人多卡管控: account {indicator.value} of this person is in case {indicator.source} "
              f"({indicator.fraud_type}); all {len(owner.accounts)} of their accounts are under control")
    return [AccountInterception(account=account, subject_id=owner.subject_id, reason=reason,
                                source=indicator.source, ts=indicator.ts) for account in owner.accounts]


def control_events(indicator: Indicator, owner: Subject) -> list[PersonEvent]:
    """The person event that marks the owner's state (all lines and accounts) as under control."""
    note = ControlNote(account=indicator.value, source=indicator.source, ts=indicator.ts)
    return [PersonEvent(person=owner.subject_id, subject_id=owner.subject_id, source="control", control=note)]
