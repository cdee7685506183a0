"""The codes records carry (fraud types, channels, interception kinds, banks' replies) in the operators' words."""
from __future__ import annotations

from schemas.catalogue import N_, tr

# code → its English words, the msgid of its translation
CODE_WORDS = {
    "rebate_task": N_("rebate task scam"), "fake_investment": N_("fake investment"), "fake_loan": N_("fake loan"),
    "fake_customer_service": N_("fake customer service"),
    "impersonate_authority": N_("impersonating police or officials"),
    "impersonate_acquaintance": N_("impersonating an acquaintance"), "romance": N_("romance scam"),
    "game_trade": N_("game account trading"), "fake_credit_repair": N_("fake credit repair"),
    "unknown": N_("unknown type"),
    "sms": N_("SMS"), "phone": N_("phone call"), "visit": N_("visit"),
    "stop-payment": N_("stop-payment"), "account control": N_("account control"), "domain block": N_("domain block"),
    "number block": N_("number block"), "number flag": N_("number flagged"),
    "held": N_("held"), "released": N_("released"), "too_late": N_("too late"), "refused": N_("refused"),
}


def code_words(lang: str | None = None) -> dict[str, str]:
    """Every code the console shows, in the operators' language."""
    return {code: tr(words, lang) for code, words in CODE_WORDS.items()}


def fraud_type_words(fraud_type: str, lang: str | None = None) -> str:
    """A fraud type in the operators' words (the code itself when it has none)."""
    words = CODE_WORDS.get(fraud_type)
    return tr(words, lang) if words else fraud_type
