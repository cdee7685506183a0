"""Every record of the external contract (CONTRACT.md), inputs and outputs, as validated msgspec Structs."""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

# Bounds that turn hostile input into a clear validation error instead of memory or CPU blow-ups.
# Event time must lie in [2000-01-01, 2100-01-01): a static bound, so validation never reads the wall clock.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
Ts = Annotated[int, Meta(ge=MIN_TS_MS, lt=MAX_TS_MS)]
Id = Annotated[str, Meta(min_length=1, max_length=128)]
Phone = Annotated[str, Meta(min_length=1, max_length=64)]
Account = Annotated[str, Meta(min_length=1, max_length=64)]
ShortText = Annotated[str, Meta(max_length=256)]
Domain = Annotated[str, Meta(min_length=1, max_length=253)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]
Fen = Annotated[int, Meta(ge=0, le=10**13)]  # ¥100 billion: more is a unit error, not a transfer

FraudType = Literal[
    "rebate_task", "fake_investment", "fake_loan", "fake_customer_service", "impersonate_authority",
    "impersonate_acquaintance", "romance", "game_trade", "fake_credit_repair", "unknown",
]
FRAUD_TYPES: tuple[str, ...] = FraudType.__args__  # type: ignore[attr-defined]
Tier = Literal["T1", "T2", "T3"]
TIER_RANK: dict[str | None, int] = {None: 0, "T3": 1, "T2": 2, "T1": 3}  # urgency: no tier, then T3 up to T1
Channel = Literal["sms", "phone", "visit"]
OutcomeKind = Literal[
    "sms_delivered", "sms_failed", "call_answered", "call_refused", "unreachable", "visited", "dissuaded",
    "already_lost", "false_alarm",
]
# What an outcome says of the person warned: being defrauded (1) or not (0: a false alarm, an analyst's dismissal
# too); the others say nothing of it. Training (`--with-outcomes`) and the shadow report read them alike.
OUTCOME_LABELS = {"dissuaded": 1, "already_lost": 1, "false_alarm": 0}


class _Record(Struct, kw_only=True, omit_defaults=True):
    """Base of every contract record: keyword-only, unknown fields ignored on decode."""


# ----------------------------------------------------------------------------- inputs


class TelecomSignal(_Record):
    """`signals.telecom`: one call or SMS seen by an operator, from the subscriber's side."""

    event_id: Id
    ts: Ts
    kind: Literal["call", "sms"]
    direction: Literal["in", "out"]
    subscriber: Phone
    counterpart: Annotated[str, Meta(max_length=64)]
    duration_s: Annotated[int, Meta(ge=0, le=172_800)] = 0
    urls: Annotated[list[Url], Meta(max_length=32)] = []
    counterpart_tags: Annotated[list[Annotated[str, Meta(max_length=32)]], Meta(max_length=16)] = []


class PaymentSignal(_Record):
    """`signals.payment`: one event of a transfer (initiated, completed, failed, held)."""

    event_id: Id
    ts: Ts
    transfer_id: Id
    status: Literal["initiated", "completed", "failed", "held"]
    payer_account: Account
    payee_account: Account
    payee_bank: ShortText
    amount_fen: Fen
    channel: Literal["mobile", "online", "atm", "counter", "third_party"]
    payer_phone: Phone | None = None
    payee_first_seen: bool | None = None
    payer_bank: ShortText | None = None  # extension: the payer's bank, where a stop-payment may also go


class DomainSignal(_Record):
    """`signals.domain`: a DNS lookup, HTTP visit or app install on a subscriber's line."""

    event_id: Id
    ts: Ts
    subscriber: Phone
    kind: Literal["dns", "http", "app_install"]
    domain: Domain | None = None
    url: Url | None = None
    app: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


class Indicator(_Record):
    """`intel.indicators`: a case element (number, account, domain, URL, app) added or retracted."""

    type: Literal["phone", "account", "domain", "url", "app"]
    value: Annotated[str, Meta(min_length=1, max_length=2048)]
    action: Literal["add", "retract"]
    fraud_type: FraudType
    confidence: Annotated[float, Meta(ge=0.0, le=1.0)]
    source: ShortText
    ts: Ts
    expires_ts: Ts | None = None


class Subject(_Record):
    """`registry.subjects`: a registered person, their lines and cards, and where they live."""

    subject_id: Id
    phones: Annotated[list[Phone], Meta(max_length=32)]
    accounts: Annotated[list[Account], Meta(max_length=64)]
    birth_year: Annotated[int, Meta(ge=1900, le=2100)]
    grid_id: Id
    station_id: Id
    name_masked: ShortText
    ts: Ts


PROGRESS_KEY_PREFIX = b"progress:"  # then the producer's id


def progress_key(producer: str) -> bytes:
    """The key of a producer's progress records (`Progress`)."""
    return PROGRESS_KEY_PREFIX + producer.encode()


def is_progress(key: bytes | None) -> bool:
    """Whether a message with this key is a progress record (`Progress`) rather than a record of its topic."""
    return key is not None and key.startswith(PROGRESS_KEY_PREFIX)


class Progress(_Record):
    """A provider's progress on one partition of an input topic (an extension of the contract, keyed
    `progress:<producer>`): every record the producer writes to that partition from now on has `ts` ≥ `progress_ts`.
    The decider writes the same on `yujing.decisions` (producer `yujing-decider`), a late decision excepted."""

    producer: Id
    progress_ts: Ts


# ----------------------------------------------------------------------------- outputs


class Reason(_Record):
    """One reason behind a score: a stable code and words an operator understands."""

    code: str
    detail: str


class FraudWarning(_Record):
    """`warnings`: one decision to warn a person, or to raise an earlier warning's tier."""

    warning_id: str
    subject_id: str
    tier: Tier
    fraud_type: FraudType
    score: float
    reasons: list[Reason]
    evidence: list[str]
    channels: list[Channel]
    ts: int
    respond_by_ts: int
    model_version: str
    policy_version: str


class SmsTask(_Record):
    """`dispatch.sms`: one message for the automated SMS gateway; `message_id` is its idempotency key."""

    warning_id: str
    tier: Tier
    fraud_type: FraudType
    ts: int
    message_id: str
    to: str
    text: str
    not_before_ts: int
    expires_ts: int
    # extension: a reminder campaign's message (宣传) rather than a warning; it yields to warnings at the gateway
    kind: Literal["warning", "reminder"] = "warning"
    campaign_id: str | None = None


class PhoneTask(_Record):
    """`dispatch.phone`: a call task for call-center staff or a police station."""

    warning_id: str
    tier: Tier
    fraud_type: FraudType
    ts: int
    task_id: str
    subject_id: str
    phone: str
    station_id: str
    script: str
    respond_by_ts: int


class VisitTask(_Record):
    """`dispatch.visit`: an in-person visit task for a grid worker or police."""

    warning_id: str
    tier: Tier
    fraud_type: FraudType
    ts: int
    task_id: str
    subject_id: str
    grid_id: str
    station_id: str
    name_masked: str
    respond_by_ts: int


class PaymentInterception(_Record):
    """`interception.payment`: a stop-payment request to a bank for one transfer."""

    transfer_id: str
    payer_account: str
    payee_account: str
    amount_fen: int
    reason: str
    ts: int
    # extension: what a bank needs to act on the request and answer it on `interception.replies`
    request_id: str | None = None  # one per transfer: a request asked again keeps its id
    warning_id: str | None = None  # the warning of the episode the transfer belongs to
    payee_bank: str | None = None
    payer_bank: str | None = None
    requesting_unit: str | None = None  # who asks (the anti-fraud center)
    station_id: str | None = None  # the police station responsible for the payer
    legal_basis: str | None = None
    case_refs: list[str] = []  # the case elements (indicators' sources) behind the decision
    expires_ts: int | None = None  # the stop lapses then unless a freeze follows


BankReplyKind = Literal["held", "released", "too_late", "refused"]


class BankReply(_Record):
    """`interception.replies` (extension): a bank's answer to a stop-payment request."""

    request_id: Id
    transfer_id: Id
    bank: ShortText
    reply: BankReplyKind  # held: the money is stopped; released: the stop lapsed or was lifted;
    # too_late: the money had left; refused: the bank will not act on the request (`note` says why)
    ts: Ts
    held_fen: Fen | None = None
    note: Annotated[str, Meta(max_length=1024)] | None = None


class AccountInterception(_Record):
    """`interception.account`: control of one account of a person one of whose cards is in a case."""

    account: str
    subject_id: str
    reason: str
    source: str
    ts: int


class DomainInterception(_Record):
    """`interception.domain`: a domain to block (also exported as a DNS RPZ zone)."""

    domain: str
    fraud_type: FraudType
    reason: str
    source: str
    ts: int
    expires_ts: int | None = None


class NumberInterception(_Record):
    """`interception.number`: a counterpart number to block or flag at the operators."""

    number: str
    action: Literal["block", "flag"]
    fraud_type: FraudType
    reason: str
    source: str
    ts: int
    expires_ts: int | None = None


class Outcome(_Record):
    """`outcomes`: what happened after a warning; feeds precision, success and training labels."""

    warning_id: str
    channel: Channel
    outcome: OutcomeKind
    ts: Ts
    task_id: str | None = None
    message_id: str | None = None
    amount_saved_fen: Fen | None = None
    note: Annotated[str, Meta(max_length=1024)] | None = None


class DeadLetter(_Record):
    """`deadletter`: a record that could not be parsed or validated, with everything needed to replay it."""

    topic: str
    partition: int
    offset: int
    reason: str
    value: str
    value_encoding: Literal["utf-8", "base64"]
    key: str | None = None
    key_encoding: Literal["utf-8", "base64"] | None = None
    field: str | None = None
    kafka_ts: int | None = None


def encode(record: Struct) -> bytes:
    """A record as the contract's UTF-8 JSON bytes."""
    return msgspec.json.encode(record)
