"""Decoding and validation of input records: bytes in, a normalised record or an `InvalidRecord` naming the field."""
from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from schemas.blockable import shared_platform, too_wide
from schemas.internal import Assessment
from schemas.normalize import (
    normalise_account,
    normalise_app,
    normalise_domain,
    normalise_indicator_value,
    normalise_phone,
)
from schemas.records import (
    BankReply,
    DomainSignal,
    Indicator,
    Outcome,
    PaymentSignal,
    Progress,
    Subject,
    TelecomSignal,
)

MAX_RECORD_BYTES = 64 * 1024  # the largest honest input record is a few kB; more is an error or an attack

INPUT_TYPES: dict[str, type[msgspec.Struct]] = {
    "signals.telecom": TelecomSignal,
    "signals.payment": PaymentSignal,
    "signals.domain": DomainSignal,
    "intel.indicators": Indicator,
    "registry.subjects": Subject,
    "outcomes": Outcome,  # an input of the dispatch stage too: field reports answer (or fail) its steps
    "interception.replies": BankReply,  # banks' answers settle the stop-payment requests
    "yujing.assessments": Assessment,  # analysts' word on decisions held for review
}

_AT_FIELD = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_ID_DIGITS = re.compile(r"[0-9０-９]{6,}")  # a run of an ID or phone number inside a name
_SHOWN_RUN = re.compile(r"[^*\s]{3,}")  # three characters of a name shown together


class InvalidRecord(ValueError):
    """A record that cannot be parsed or fails validation; `field` names the culprit where there is one."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason if field is None else f"{field}: {reason}")
        self.reason = reason
        self.field = field


_DECODERS = {topic: msgspec.json.Decoder(kind) for topic, kind in INPUT_TYPES.items()}
_PROGRESS = msgspec.json.Decoder(Progress)
_TYPED: dict[type, msgspec.json.Decoder] = {}
S = TypeVar("S", bound=msgspec.Struct)


def decode_raw(logical_topic: str, raw: bytes | None) -> msgspec.Struct:
    """Parse and type-check one message value of an input topic (no normalisation)."""
    return _decode(_DECODERS[logical_topic], raw)


def tombstone_subject(key: bytes | None) -> str:
    """The subject id a registry tombstone (a null value) erases: its key, which must be a valid id."""
    try:
        subject_id = (key or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("a registry tombstone's key is not UTF-8", "subject_id") from None
    if not 1 <= len(subject_id) <= 128:  # as a subject_id is (`schemas.records.Id`)
        raise InvalidRecord("a registry tombstone must be keyed by the subject_id it erases", "subject_id")
    return subject_id


def decode_progress(raw: bytes | None) -> Progress:
    """Parse and type-check a provider's progress record (`schemas.records.Progress`)."""
    return _decode(_PROGRESS, raw)  # type: ignore[return-value]


def decode_typed(kind: type[S], raw: bytes | None) -> S:
    """Parse and type-check one message of an internal or dispatch topic; a null value (a tombstone), bad JSON or
    a wrong field raises `InvalidRecord` like an input record."""
    decoder = _TYPED.get(kind)
    if decoder is None:
        decoder = _TYPED[kind] = msgspec.json.Decoder(kind)
    return _decode(decoder, raw)  # type: ignore[return-value]


def _decode(decoder: msgspec.json.Decoder, raw: bytes | None) -> msgspec.Struct:
    if raw is None:
        raise InvalidRecord("empty message (null value)")
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidRecord(f"record of {len(raw)} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(f"not UTF-8 (byte {exc.start})") from None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT_FIELD.search(text)
        if match:
            raise InvalidRecord(text[: match.start()], match.group(1) or None) from None
        missing = _MISSING.search(text)
        raise InvalidRecord(text, missing.group(1) if missing else None) from None
    except msgspec.DecodeError as exc:
        raise InvalidRecord(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidRecord("JSON nested too deeply") from None


def _account(value: str, field: str) -> str:
    account = normalise_account(value)
    if not account or not account.isprintable():
        raise InvalidRecord("not an account (nothing left, or control characters, once separators are removed)", field)
    return account


def _phone(value: str, field: str, e164: bool) -> str:
    normalised = normalise_phone(value)
    if normalised is None or (e164 and not normalised.startswith("+")):
        raise InvalidRecord("not a phone number" + (" in E.164" if e164 else ""), field)
    return normalised


def normalise_record(record: msgspec.Struct) -> msgspec.Struct:
    """The record with numbers, accounts, domains and apps in canonical form, or InvalidRecord.

    A counterpart that is not a number at all stays as it came, lower-cased and stripped, so that a
    garbage caller id is still a value an indicator can name (operators report such values as presented).
    """
    replace = msgspec.structs.replace
    if isinstance(record, TelecomSignal):
        counterpart = normalise_phone(record.counterpart) or record.counterpart.strip().lower()
        return replace(record, subscriber=_phone(record.subscriber, "subscriber", True), counterpart=counterpart)
    if isinstance(record, PaymentSignal):
        payer_phone = _phone(record.payer_phone, "payer_phone", True) if record.payer_phone else None
        return replace(record, payer_account=_account(record.payer_account, "payer_account"),
                       payee_account=_account(record.payee_account, "payee_account"), payer_phone=payer_phone)
    if isinstance(record, DomainSignal):
        subscriber = _phone(record.subscriber, "subscriber", True)
        if record.kind == "app_install":
            app = normalise_app(record.app or "")
            if not app:
                raise InvalidRecord("app_install needs an app", "app")
            return replace(record, subscriber=subscriber, app=app)
        if not record.domain:
            raise InvalidRecord(f"{record.kind} needs a domain", "domain")
        domain = normalise_domain(record.domain)
        if domain is None:
            raise InvalidRecord("not a valid domain name", "domain")
        return replace(record, subscriber=subscriber, domain=domain)
    if isinstance(record, Indicator):
        value = normalise_indicator_value(record.type, record.value)
        if value is None:
            raise InvalidRecord(f"not a valid {record.type}", "value")
        wide = too_wide(value) if record.type in ("domain", "url") else None
        if wide is not None:
            raise InvalidRecord(wide, "value")
        if record.type == "url" and shared_platform(value):
            raise InvalidRecord(f"a URL on {value}, a platform many users share: signals name hosts, not pages, so "
                                "it could be neither matched nor blocked without hitting every user (a domain "
                                "indicator blocks the host, if that is meant)", "value")
        if record.expires_ts is not None and record.expires_ts <= record.ts:
            raise InvalidRecord("expires before it is known", "expires_ts")
        return replace(record, value=value)
    if isinstance(record, Assessment):
        if record.action == "dismiss" and not record.reason.strip():
            raise InvalidRecord("a dismissal needs its reason (it labels the false alarm)", "reason")
        if record.action == "raise" and record.tier is None:
            raise InvalidRecord("raise needs the tier to raise to", "tier")
        return record
    if isinstance(record, Subject):
        if record.grid_id.startswith("@"):  # `visit:@STATION` is a station's queue of visits without a grid
            raise InvalidRecord("a grid id may not start with @", "grid_id")
        if record.name_masked and (not _masked(record.name_masked) or _ID_DIGITS.search(record.name_masked)):
            raise InvalidRecord("name_masked must be masked (e.g. 王*, 王*明: no more characters shown than hidden, "
                                "plus one) and carry no ID number", "name_masked")
        return replace(record, phones=[_phone(p, "phones", True) for p in record.phones],
                       accounts=[_account(a, "accounts") for a in record.accounts])
    return record


def _masked(name: str) -> bool:
    """Whether a name is masked: some characters hidden, at most one more shown than hidden, and never three shown
    in a row (王*, 王*明, 欧阳**; not 王小明*, nor 王小明*** padded with stars)."""
    hidden = name.count("*")
    shown = sum(1 for c in name if c != "*" and not c.isspace())
    return hidden > 0 and shown <= hidden + 1 and not _SHOWN_RUN.search(name)


def decode_input(logical_topic: str, raw: bytes | None) -> msgspec.Struct:
    """Parse, validate and normalise one input message: the one entry point agents call."""
    return normalise_record(decode_raw(logical_topic, raw))
