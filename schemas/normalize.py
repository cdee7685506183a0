"""Normalisers for numbers, domains and URLs, so that the same thing always has the same key."""
from __future__ import annotations

import re
from enum import Enum
from functools import lru_cache
from urllib.parse import urlsplit

import idna

_SEPARATORS = re.compile(r"[\s\-().\u00a0\u3000]")
_DIGITS = re.compile(r"\+?[0-9]{1,20}")  # ASCII digits only: `\d` also takes Arabic-Indic and full-width ones
_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")


class NumberKind(str, Enum):
    """What a normalised number is, as far as its shape tells."""

    MOBILE_CN = "mobile_cn"
    LANDLINE_CN = "landline_cn"
    INTERNATIONAL = "international"
    SERVICE = "service"  # 95xxx bank lines, 96110 anti-fraud, 400/800, 12xxx short codes
    SMS_BUSINESS = "sms_business"  # 106xx bulk-SMS sender ids
    OTHER = "other"


def normalise_phone(raw: str) -> str | None:
    """A number as one canonical string: E.164 where it is one, bare digits for service codes, None for garbage.

    `+86 138-0013-8000`, `008613800138000`, `8613800138000` and `13800138000` all become `+8613800138000`;
    `+00…` (a mangled international prefix) becomes `+…`; `95588` and `10690…` stay as they are.
    """
    s = _SEPARATORS.sub("", raw)
    if not _DIGITS.fullmatch(s):
        return None
    if s.startswith("+"):
        digits = s[1:]
        if digits.startswith("00"):
            digits = digits[2:]
        return "+" + digits if len(digits) >= 5 else None
    if s.startswith("00"):
        digits = s[2:]
        return "+" + digits if len(digits) >= 5 else None
    if len(s) == 13 and s.startswith("86") and _CN_MOBILE.fullmatch(s[2:]):
        return "+" + s
    if _CN_MOBILE.fullmatch(s):
        return "+86" + s
    if s.startswith("0") and 10 <= len(s) <= 12:
        return "+86" + s[1:]  # a landline with its trunk-prefixed area code
    return s


def number_kind(normalised: str | None) -> NumberKind:
    """Classify a normalised number by its shape."""
    if not normalised:
        return NumberKind.OTHER
    if normalised.startswith("+86"):
        return NumberKind.MOBILE_CN if _CN_MOBILE.fullmatch(normalised[3:]) else NumberKind.LANDLINE_CN
    if normalised.startswith("+"):
        return NumberKind.INTERNATIONAL
    if normalised.startswith("106"):
        return NumberKind.SMS_BUSINESS
    if normalised.startswith(("95", "96", "400", "800", "12", "10")):
        return NumberKind.SERVICE
    return NumberKind.OTHER


@lru_cache(maxsize=65_536)  # the same few thousand domains come back all day
def normalise_domain(raw: str) -> str | None:
    """A domain in lower-case ASCII (IDNA 2008 via UTS 46, so homographs get their own punycode), no trailing dot.

    Returns None when the text is not a valid host name.
    """
    s = raw.strip().rstrip(".")
    if not s or len(s) > 253:
        return None
    try:
        ascii_name = idna.encode(s, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ascii_name.lower() or None


@lru_cache(maxsize=65_536)
def url_domain(raw: str) -> str | None:
    """The normalised host of an http(s) URL (a bare `host/path` counts as http); None for anything else.

    `javascript:`, `data:` and other schemes have no host to match, so they yield None.
    """
    s = raw.strip()
    if "://" not in s:
        if ":" in s.split("/", 1)[0] and not re.match(r"^[^:/]+:\d+(/|$)", s):
            return None  # a scheme such as javascript: or mailto:
        s = "http://" + s
    try:
        parts = urlsplit(s)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return normalise_domain(host)


def normalise_account(raw: str) -> str:
    """A bank account or card number without spaces or dashes, upper-case."""
    return _SEPARATORS.sub("", raw).upper()


def normalise_app(raw: str) -> str:
    """An app package id, lower-case and trimmed."""
    return raw.strip().lower()


def normalise_indicator_value(kind: str, value: str) -> str | None:
    """The matching key of an indicator value of the given type (phone, account, domain, url, app)."""
    if kind == "phone":
        return normalise_phone(value)
    if kind == "account":
        return normalise_account(value) or None
    if kind == "domain":
        return normalise_domain(value)
    if kind == "url":
        return url_domain(value)
    if kind == "app":
        return normalise_app(value) or None
    return None
