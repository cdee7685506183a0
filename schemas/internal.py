"""Project-internal records (not in the contract): what flows between yujing's own agents."""
from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import msgspec
from msgspec import Meta, Struct

from schemas.records import DomainSignal, Indicator, PaymentSignal, TelecomSignal

ValueType = Literal["phone", "account", "domain", "app"]


class IndicatorHit(Struct, kw_only=True, omit_defaults=True):
    """A person's contact with a case element, found forward (contact after the indicator) or in reverse."""

    value_key: str  # "type:value", the index key
    fraud_type: str
    confidence: float
    source: str
    indicator_ts: int
    contact_ts: int
    event_id: str
    mode: Literal["forward", "reverse", "fanout"]
    fanout: int = 0  # distinct people this counterpart reached in the fan-out window
    end_ts: int | None = None  # the indicator's span ends here (expiry, or a retraction already applied)


class RetractionNote(Struct, kw_only=True):
    """An indicator's span of a value ended earlier than its hits say: they stop counting from `end_ts` on."""

    value_key: str
    add_ts: int  # the span's start: names the span (the hits' `indicator_ts`)
    end_ts: int  # never before `ts`
    ts: int  # when the end became known: the event time of the retraction (or of the re-add that shortened it)
    source: str  # who ended it: the retraction's (or the shortening re-add's) source


class ControlNote(Struct, kw_only=True):
    """One of the person's accounts is in a case: all their accounts and lines go under control."""

    account: str
    source: str
    ts: int


class PersonEvent(Struct, kw_only=True, omit_defaults=True):
    """`yujing.events` (key: person): a validated signal, an indicator hit or its retraction, a control, or the
    person's erasure (a registry tombstone: nothing else is set).

    `role` says how a signal concerns the person: `self` for their own line or account, `payee` for an
    incoming transfer (a victim receiving a "rebate" is a signal too).
    """

    person: str
    source: Literal["signals.telecom", "signals.payment", "signals.domain", "hit", "retraction", "control", "erasure"]
    role: Literal["self", "payee"] = "self"
    subject_id: str | None = None
    telecom: TelecomSignal | None = None
    payment: PaymentSignal | None = None
    domain: DomainSignal | None = None
    hit: IndicatorHit | None = None
    control: ControlNote | None = None
    retraction: RetractionNote | None = None


class Contact(Struct, kw_only=True, array_like=True):
    """A person touched a value (called a number, visited a domain, paid an account) at event time `ts`."""

    value_key: str
    person: str
    ts: int
    event_id: str


class ValueMessage(Struct, kw_only=True, omit_defaults=True):
    """`yujing.contacts` (key: value_key): a contact or an indicator change, in one ordered stream per value; or
    (sent to every partition, no value) a person erased, whose entries under every value go."""

    value_key: str
    contact: Contact | None = None
    indicator: Indicator | None = None
    erased: str | None = None


class SmsSent(Struct, kw_only=True, omit_defaults=True):
    """`yujing.sms-sent` (key: message_id, compacted): the SMS adapter's durable ledger, written before a provider
    is asked (`sending`) and when it took the message (`accepted`, or `uncertain`: no answer); a rebuild after
    Redis lost the ledger reads it, so that no message is sent twice and receipts still find theirs."""

    message_id: str
    warning_id: str
    to: str
    kind: str
    state: Literal["sending", "accepted", "uncertain", "deferred"]  # deferred: throttled, not taken
    at: int  # wall clock, ms
    ref: str = ""


class Trigger(Struct, kw_only=True, omit_defaults=True):
    """`yujing.triggers` (key: person): something happened that a scorer must look at now."""

    trigger_id: str
    person: str
    subject_id: str | None
    ts: int
    cause: Literal["indicator_hit", "control"]
    mode: str
    value_key: str
    fraud_type: str
    event_id: str


class TransferRef(Struct, kw_only=True, omit_defaults=True):
    """The transfer a T1 decision asks the bank to stop."""

    transfer_id: str
    payer_account: str
    payee_account: str
    amount_fen: int
    ts: int
    payee_bank: str = ""
    payer_bank: str = ""
    case_refs: list[str] = []  # the sources of the case elements behind the decision


class DecisionReason(Struct, kw_only=True):
    """One reason behind a decision (contract `reasons` item)."""

    code: str
    detail: str


class Decision(Struct, kw_only=True, omit_defaults=True):
    """`yujing.decisions` (key: person): the scorer decided to warn, raise a tier, or stop a transfer."""

    decision_id: str  # stable: the same person, episode and tier (or transfer) give the same id
    person: str
    subject_id: str | None
    tier: Literal["T1", "T2", "T3"]
    rose: bool  # the tier rose (a warning); False: a further transfer at T1 (a stop-payment only)
    fraud_type: str
    type_probability: float
    score: float
    reasons: list[DecisionReason]
    evidence: list[str]
    ts: int
    episode_ts: int
    model_version: str
    policy_version: str
    transfer: TransferRef | None = None
    features: list[float] = []  # the risk features scored: an outcome reported back makes them a training row


class Assessment(Struct, kw_only=True, omit_defaults=True):
    """`yujing.assessments` (key: decision id): an analyst's word on a decision held for review."""

    decision_id: Annotated[str, Meta(min_length=1, max_length=128)]
    action: Literal["confirm", "dismiss", "raise"]  # dispatch as routed / send nothing (a false alarm) / higher tier
    analyst: Annotated[str, Meta(min_length=1, max_length=128)]
    ts: Annotated[int, Meta(ge=0)]  # when the analyst acted (wall clock, ms)
    reason: Annotated[str, Meta(max_length=1024)] = ""  # required to dismiss: it is the false alarm's label
    tier: Literal["T1", "T2"] | None = None  # the tier raised to


class RiskState(Struct, array_like=True):
    """What a person's state remembers of their tier: which, since when, and when evidence last came."""

    tier: str
    episode_ts: int  # names the episode: the earliest evidence in the window when the person first rose
    last_evidence_ts: int
    decided: list[list[str]] = []  # [event key, tier, rose|stop] of the latest decisions, re-sent on a replay
    stopped: list[str] = []  # the latest transfers a stop-payment was asked for: one request per transfer


EVERY_PARTITION = -1  # an output's partition: one copy to each partition of its topic
# The decider's progress on a partition of `yujing.decisions` (a `Progress` record under this key): the decisions of
# that partition's persons below its `progress_ts` are all written before it (a late one excepted)
DECIDER = "yujing-decider"


class Output(NamedTuple):
    """One message to send: logical topic, key, record (and, for a deferred decision, its origin's Kafka time;
    for a message to every partition, `EVERY_PARTITION`)."""

    topic: str
    key: bytes
    value: msgspec.Struct
    origin: float | None = None
    partition: int | None = None
