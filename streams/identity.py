"""Identity: the real-name registry as lookups (line → person, account → person) and the resolution of signals."""
from __future__ import annotations

from typing import Callable

import msgspec

from schemas.records import Subject

Lookup = Callable[[str], str | None]


def subject_key(subject_id: str) -> str:
    """The identity-table key of a subject's profile."""
    return f"subject:{subject_id}"


def identity_changes(old: Subject | None, new: Subject) -> tuple[dict[str, str], list[str]]:
    """Keys to set and keys to delete when a subject's registry record becomes `new`.

    A line or card that moved to someone else is simply overwritten by the new owner's record; one the person
    gave up is deleted, so their old number no longer resolves to them.
    """
    wanted = {f"phone:{p}": new.subject_id for p in new.phones}
    wanted.update({f"account:{a}": new.subject_id for a in new.accounts})
    gone: list[str] = []
    if old is not None:
        previous = {f"phone:{p}" for p in old.phones} | {f"account:{a}" for a in old.accounts}
        gone = sorted(previous - set(wanted))
    wanted[subject_key(new.subject_id)] = msgspec.json.encode(new).decode()
    return wanted, gone


def decode_profile(raw: str | bytes | None) -> Subject | None:
    """A subject profile stored in the identity table."""
    return msgspec.json.decode(raw, type=Subject) if raw else None


def resolve_line(lookup: Lookup, phone: str) -> tuple[str, str | None]:
    """(person key, subject id) of a line: the registered person, or the line itself."""
    subject = lookup(f"phone:{phone}")
    return (subject, subject) if subject else (phone, None)


def resolve_account(lookup: Lookup, account: str, phone: str | None = None) -> tuple[str, str | None]:
    """(person key, subject id) of an account: by the account, then by the registered phone, else the account."""
    subject = lookup(f"account:{account}") or (lookup(f"phone:{phone}") if phone else None)
    return (subject, subject) if subject else (account, None)
