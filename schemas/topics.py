"""Topic names by their logical name: the contract's (CONTRACT.md), then the project's own internal ones."""
from __future__ import annotations

SIGNAL_TOPICS = ("signals.telecom", "signals.payment", "signals.domain")
SOURCE_TOPICS = (*SIGNAL_TOPICS, "intel.indicators")  # what the hot path reads from providers, in event-time order
COMPACTED_TOPICS = ("intel.indicators", "registry.subjects")
OUTPUT_TOPICS = (
    "warnings",
    "dispatch.sms",
    "dispatch.phone",
    "dispatch.visit",
    "interception.payment",
    "interception.account",
    "interception.domain",
    "interception.number",
    "outcomes",
)
DEADLETTER_TOPIC = "deadletter"
CONTRACT_TOPICS = SIGNAL_TOPICS + COMPACTED_TOPICS + OUTPUT_TOPICS + (DEADLETTER_TOPIC,)
REPLY_TOPIC = "interception.replies"  # banks' answers to stop-payment requests
EXTENSION_TOPICS = (REPLY_TOPIC,)  # topics yujing adds for other teams (CONTRACT.md, Extensions)
PUBLIC_TOPICS = CONTRACT_TOPICS + EXTENSION_TOPICS
# Project-internal topics: events keyed by person, contacts and indicators keyed by value, triggers to score.
HOT_PATH_TOPICS = ("yujing.events", "yujing.contacts", "yujing.triggers", "yujing.decisions")
SMS_LEDGER_TOPIC = "yujing.sms-sent"  # the SMS adapter's durable ledger: what it asked a provider to send
ASSESSMENT_TOPIC = "yujing.assessments"  # analysts' confirm, dismiss or raise of decisions held for review
SHADOW_TOPIC = "yujing.shadow-decisions"  # what a candidate model would have decided (yujing shadow)
INTERNAL_TOPICS = (*HOT_PATH_TOPICS, SMS_LEDGER_TOPIC, ASSESSMENT_TOPIC, SHADOW_TOPIC)
