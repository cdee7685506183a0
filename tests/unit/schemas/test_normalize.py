"""Normalisers: table cases for the forms operators send, and properties that must hold for any input."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.normalize import (
    NumberKind,
    normalise_domain,
    normalise_phone,
    number_kind,
    url_domain,
)

MOBILE = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@pytest.mark.parametrize(("raw", "expected"), [
    ("+8613800138000", "+8613800138000"),
    ("+86 138-0013-8000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("8613800138000", "+8613800138000"),
    ("13800138000", "+8613800138000"),
    ("(010) 1234 5678", "+861012345678"),
    ("+0044 20 7946 0000", "+442079460000"),
    ("004420 7946 0000", "+442079460000"),
    ("95588", "95588"),
    ("96110", "96110"),
    ("1069012345678", "1069012345678"),
    ("unknown", None),
    ("", None),
    ("+", None),
    ("++86138", None),
    ("+٨٦١٣٨٠٠١٣٨٠٠٠", None),  # Arabic-Indic digits: a lookalike, not the number
    ("１３８００１３８０００", None),  # full-width digits
])
def test_phone_forms(raw: str, expected: str | None) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(("number", "kind"), [
    ("+8613800138000", NumberKind.MOBILE_CN),
    ("+861012345678", NumberKind.LANDLINE_CN),
    ("+442079460000", NumberKind.INTERNATIONAL),
    ("95588", NumberKind.SERVICE),
    ("1069012345678", NumberKind.SMS_BUSINESS),
    (None, NumberKind.OTHER),
])
def test_number_kind(number: str | None, kind: NumberKind) -> None:
    assert number_kind(number) == kind


@given(MOBILE, st.sampled_from(["+86", "0086", "86", "", "+86 ", "+0086"]), st.sampled_from(["", " ", "-"]))
def test_every_written_form_of_a_mobile_is_one_key(mobile: str, prefix: str, sep: str) -> None:
    written = prefix + sep.join([mobile[:3], mobile[3:7], mobile[7:]])
    assert normalise_phone(written) == "+86" + mobile


@given(st.text(max_size=30))
def test_phone_normalisation_is_idempotent(raw: str) -> None:
    once = normalise_phone(raw)
    if once is not None:
        assert normalise_phone(once) == once


@pytest.mark.parametrize(("raw", "expected"), [
    ("Example.COM.", "example.com"),
    ("  refund-taobao.xyz ", "refund-taobao.xyz"),
    ("公安.中国", "xn--55q79v.xn--fiqs8s"),
    ("xn--55q79v.xn--fiqs8s", "xn--55q79v.xn--fiqs8s"),
    # Cyrillic 'а' in place of Latin 'a': a homograph gets its own key, never the real domain's.
    ("\u0430pple.com", "xn--pple-43d.com"),
    ("bad domain.com", None),
    ("", None),
    ("a" * 300 + ".com", None),
])
def test_domain_forms(raw: str, expected: str | None) -> None:
    assert normalise_domain(raw) == expected


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True))
def test_domain_case_and_trailing_dot_do_not_matter(domain: str) -> None:
    assert normalise_domain(domain.upper() + ".") == normalise_domain(domain)


@given(st.text(max_size=40))
def test_domain_normalisation_is_idempotent(raw: str) -> None:
    once = normalise_domain(raw)
    if once is not None:
        assert normalise_domain(once) == once


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://Refund-TaoBao.xyz/claim?id=1", "refund-taobao.xyz"),
    ("HTTP://Example.COM./x", "example.com"),
    ("refund-taobao.xyz/claim", "refund-taobao.xyz"),
    ("refund-taobao.xyz:8080/claim", "refund-taobao.xyz"),
    ("http://user:pw@evil.example:81/", "evil.example"),
    ("javascript:alert(1)", None),
    ("JavaScript://comment%0aalert(1)", None),
    ("data:text/html,hi", None),
    ("mailto:a@b.c", None),
    ("http://[::1", None),
    ("https:///nohost", None),
])
def test_url_domain(raw: str, expected: str | None) -> None:
    assert url_domain(raw) == expected


@given(st.text(max_size=60))
def test_url_domain_never_raises(raw: str) -> None:
    result = url_domain(raw)
    assert result is None or normalise_domain(result) == result
