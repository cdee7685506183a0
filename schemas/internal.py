"""Project-internal records (not in the contract): validated signals re-keyed by the person they concern."""
from __future__ import annotations

from typing import Literal

from msgspec import Struct

from schemas.records import DomainSignal, PaymentSignal, TelecomSignal


class PersonEvent(Struct, kw_only=True, omit_defaults=True):
    """`yujing.events`: one validated, normalised signal for one person (key: the person key).

    `role` says how the signal concerns the person: `self` for their own line or account, `payee` for an
    incoming transfer (a victim receiving a "rebate" is a signal too).
    """

    person: str
    source: Literal["signals.telecom", "signals.payment", "signals.domain"]
    role: Literal["self", "payee"] = "self"
    telecom: TelecomSignal | None = None
    payment: PaymentSignal | None = None
    domain: DomainSignal | None = None
