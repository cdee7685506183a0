"""What an indicator asks for besides matching: its index key, multi-card control (一人一卡涉案、多行多卡管控), and
the blocks of domains and numbers for ISPs and operators, as pure functions."""
from __future__ import annotations

from schemas.internal import ControlNote, PersonEvent
from schemas.masking import mask
from schemas.records import (
    AccountInterception,
    DomainInterception,
    Indicator,
    NumberInterception,
    Subject,
)


def indicator_value_key(indicator: Indicator) -> str:
    """The contact-index key an (already normalised) indicator matches: a URL indicator matches its domain."""
    kind = "domain" if indicator.type == "url" else indicator.type
    return f"{kind}:{indicator.value}"


def account_controls(indicator: Indicator, owner: Subject) -> list[AccountInterception]:
    """When one card of a registered person is in a case, a control for every account of theirs, across banks."""
    reason = (f"一人多卡管控: account {mask(indicator.value)} of this person is in case {indicator.source} "
              f"({indicator.fraud_type}); all {len(owner.accounts)} of their accounts are under control")
    return [AccountInterception(account=account, subject_id=owner.subject_id, reason=reason,
                                source=indicator.source, ts=indicator.ts) for account in owner.accounts]


def control_events(indicator: Indicator, owner: Subject) -> list[PersonEvent]:
    """The person event that marks the owner's state (all lines and accounts) as under control."""
    note = ControlNote(account=indicator.value, source=indicator.source, ts=indicator.ts)
    return [PersonEvent(person=owner.subject_id, subject_id=owner.subject_id, source="control", control=note)]


BLOCK_CONFIDENCE = 0.8  # below this a number is flagged for the operators' review, not blocked


def interceptions_for(indicator: Indicator) -> list[DomainInterception | NumberInterception]:
    """What an indicator change asks of ISPs and operators; a retraction ends the block (expires now)."""
    retract = indicator.action == "retract"
    expires = indicator.ts if retract else indicator.expires_ts
    why = (f"retracted: {indicator.source}" if retract
           else f"named in {indicator.source} ({indicator.fraud_type}, confidence {indicator.confidence:.2f})")
    if indicator.type in ("domain", "url"):
        if not retract and indicator.confidence < BLOCK_CONFIDENCE:
            return []
        return [DomainInterception(domain=indicator.value, fraud_type=indicator.fraud_type, reason=why,
                                   source=indicator.source, ts=indicator.ts, expires_ts=expires)]
    if indicator.type == "phone":
        action = "block" if indicator.confidence >= BLOCK_CONFIDENCE else "flag"
        return [NumberInterception(number=indicator.value, action=action, fraud_type=indicator.fraud_type,  # type: ignore[arg-type]
                                   reason=why, source=indicator.source, ts=indicator.ts, expires_ts=expires)]
    return []
