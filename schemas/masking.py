"""How numbers and accounts are shown to people: all but the last four characters hidden."""
from __future__ import annotations

PERSONAL_KINDS = frozenset({"phone", "account"})  # indicator and index kinds naming a line or an account


def mask(value: str, keep: int = 4) -> str:
    """An account or number with all but its last `keep` characters hidden."""
    return "*" * max(0, len(value) - keep) + value[-keep:] if len(value) > keep else "*" * len(value)


def shown(kind: str, value: str) -> str:
    """A value as a person may read it: a phone number or account masked; a domain, URL or app as it is."""
    return mask(value) if kind in PERSONAL_KINDS else value


def shown_counterpart(value: str) -> str:
    """A counterpart of a call, message or stage (a number, or a link or app) as a person may read it."""
    return mask(value) if value.lstrip("+").replace(" ", "").isdigit() else value
