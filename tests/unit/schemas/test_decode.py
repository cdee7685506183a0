"""Decoding rejects bad input with a reason that names the field, and normalises good input."""
from __future__ import annotations

import json

import pytest

from schemas.decode import MAX_RECORD_BYTES, InvalidRecord, decode_input, tombstone_subject

TS = 1_764_300_000_000
CALL = {"event_id": "e1", "ts": TS, "kind": "call", "direction": "in", "subscriber": "+8613800138000",
        "counterpart": "0086 138-0013-9000", "duration_s": 300, "counterpart_tags": ["voip"]}
PAY = {"event_id": "p1", "ts": TS, "transfer_id": "t1", "status": "initiated", "payer_account": "6222 0000 1111",
       "payee_account": "6217-9999", "payee_bank": "ICBC", "amount_fen": 500000, "channel": "mobile"}
DNS = {"event_id": "d1", "ts": TS, "subscriber": "+8613800138000", "kind": "dns", "domain": "Refund-Taobao.XYZ."}
IND = {"type": "phone", "value": "+86 170 0000 1111", "action": "add", "fraud_type": "fake_customer_service",
       "confidence": 0.9, "source": "case-1", "ts": TS}
SUBJ = {"subject_id": "s1", "phones": ["13800138000"], "accounts": ["6222 0000 1111"], "birth_year": 1950,
        "grid_id": "G0001", "station_id": "S01", "name_masked": "王*", "ts": TS}


def _bad(topic: str, doc: object) -> InvalidRecord:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(InvalidRecord) as info:
        decode_input(topic, raw)
    return info.value


def test_valid_records_are_normalised() -> None:
    call = decode_input("signals.telecom", json.dumps(CALL).encode())
    assert call.counterpart == "+8613800139000"
    pay = decode_input("signals.payment", json.dumps(PAY).encode())
    assert (pay.payer_account, pay.payee_account) == ("622200001111", "62179999")
    dns = decode_input("signals.domain", json.dumps(DNS).encode())
    assert dns.domain == "refund-taobao.xyz"
    ind = decode_input("intel.indicators", json.dumps(IND).encode())
    assert ind.value == "+8617000001111"
    subj = decode_input("registry.subjects", json.dumps(SUBJ).encode())
    assert subj.phones == ["+8613800138000"] and subj.accounts == ["622200001111"]


def test_url_indicator_matches_on_its_domain() -> None:
    ind = decode_input("intel.indicators", json.dumps({**IND, "type": "url", "value": "https://Fake.CN/a"}).encode())
    assert ind.value == "fake.cn"


@pytest.mark.parametrize("kind, value", [("domain", "someone.github.io"), ("domain", "refund.com.cn"),
                                         ("domain", "docs.google.com"), ("url", "https://someone.github.io/x")])
def test_a_site_under_a_public_suffix_is_an_indicator(kind: str, value: str) -> None:
    assert decode_input("intel.indicators", json.dumps({**IND, "type": kind, "value": value}).encode())


@pytest.mark.parametrize(("topic", "doc", "field", "words"), [
    ("signals.telecom", b"not json", None, "not JSON"),
    ("signals.telecom", b"\xff\xfe{}", None, "not UTF-8"),
    ("signals.telecom", b"[1,2]", None, "Expected `object`"),
    ("signals.telecom", {**CALL, "ts": "1764300000000"}, "ts", "Expected `int`, got `str`"),
    ("signals.telecom", {**CALL, "ts": 1}, "ts", ">= 946684800000"),
    ("signals.telecom", {**CALL, "ts": 9_999_999_999_999}, "ts", "<= 4102444799999"),
    ("signals.telecom", {**CALL, "kind": "fax"}, "kind", "Invalid enum value 'fax'"),
    ("signals.telecom", {k: v for k, v in CALL.items() if k != "subscriber"}, "subscriber", "missing required"),
    ("signals.telecom", {**CALL, "subscriber": "ab"}, "subscriber", "not a phone number"),
    ("signals.telecom", {**CALL, "subscriber": "95588"}, "subscriber", "E.164"),
    ("signals.telecom", {**CALL, "duration_s": -5}, "duration_s", ">= 0"),
    ("signals.telecom", {**CALL, "urls": ["x"] * 40}, "urls", "length <= 32"),
    ("signals.payment", {**PAY, "amount_fen": -1}, "amount_fen", ">= 0"),
    ("signals.payment", {**PAY, "amount_fen": 12.5}, "amount_fen", "Expected `int`, got `float`"),
    ("signals.payment", {**PAY, "amount_fen": "500"}, "amount_fen", "Expected `int`, got `str`"),
    ("signals.payment", {**PAY, "status": None}, "status", "Expected `str`, got `null`"),
    ("signals.domain", {**DNS, "domain": None}, "domain", "needs a domain"),
    ("signals.domain", {**DNS, "domain": "bad domain"}, "domain", "not a valid domain"),
    ("signals.domain", {**DNS, "kind": "app_install", "domain": None}, "app", "needs an app"),
    ("intel.indicators", {**IND, "confidence": 1.5}, "confidence", "<= 1.0"),
    ("intel.indicators", {**IND, "type": "url", "value": "javascript:alert(1)"}, "value", "not a valid url"),
    ("intel.indicators", {**IND, "expires_ts": TS - 1}, "expires_ts", "expires before"),
    ("intel.indicators", {**IND, "type": "domain", "value": "com"}, "value", "single-label"),
    ("intel.indicators", {**IND, "type": "domain", "value": "COM.CN."}, "value", "com.cn is a public suffix"),
    ("intel.indicators", {**IND, "type": "domain", "value": "github.io"}, "value", "public suffix"),
    ("intel.indicators", {**IND, "type": "url", "value": "https://gov.cn/x"}, "value", "public suffix"),
    ("intel.indicators", {**IND, "type": "url", "value": "http://localhost/"}, "value", "single-label"),
    ("intel.indicators", {**IND, "type": "url", "value": "https://docs.google.com/forms/d/x"}, "value",
     "a platform many users share"),
    ("registry.subjects", {**SUBJ, "phones": "13800138000"}, "phones", "Expected `array`"),
    ("signals.telecom", {**CALL, "subscriber": "+٨٦١٣٨٠٠١٣٨٠٠٠"}, "subscriber", "not a phone number"),  # Arabic-Indic
    ("signals.telecom", {**CALL, "subscriber": "１３８００１３８０００"}, "subscriber", "not a phone"),  # full-width
    ("signals.payment", {**PAY, "payee_account": " - "}, "payee_account", "not an account"),
    ("signals.payment", {**PAY, "payer_account": "6222\u0000"}, "payer_account", "not an account"),
    ("signals.domain", {**DNS, "kind": "app_install", "app": "   "}, "app", "needs an app"),
    ("registry.subjects", {**SUBJ, "accounts": ["6222 0000 1111", "--"]}, "accounts", "not an account"),
    ("registry.subjects", {**SUBJ, "name_masked": "王小明"}, "name_masked", "must be masked"),
    ("registry.subjects", {**SUBJ, "name_masked": "王小明*"}, "name_masked", "must be masked"),  # all shown
    ("registry.subjects", {**SUBJ, "name_masked": "Zhang Xiaoming*"}, "name_masked", "must be masked"),
    ("registry.subjects", {**SUBJ, "name_masked": "王小明***"}, "name_masked", "must be masked"),  # padded
    ("registry.subjects", {**SUBJ, "name_masked": "王* 410102195001011234"}, "name_masked", "no ID number"),
    ("registry.subjects", {**SUBJ, "grid_id": "@ST1"}, "grid_id", "may not start with @"),
])
def test_bad_records_name_the_field(topic: str, doc: object, field: str | None, words: str) -> None:
    err = _bad(topic, doc)
    assert err.field == field
    assert words in err.reason


def test_oversized_record_is_rejected_before_parsing() -> None:
    err = _bad("signals.telecom", {**CALL, "counterpart": "9" * 100_000})
    assert f"exceeds the {MAX_RECORD_BYTES}-byte limit" in err.reason


def test_field_over_its_length_names_the_field() -> None:
    err = _bad("signals.telecom", {**CALL, "event_id": "e" * 20_000})
    assert err.field == "event_id" and "length <= 128" in err.reason


def test_deeply_nested_unknown_field_is_an_error_not_a_crash() -> None:
    deep = b'{"x":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    assert len(deep) < MAX_RECORD_BYTES
    assert _bad("signals.telecom", deep).reason


def test_javascript_sms_url_is_kept_but_has_no_domain() -> None:
    sms = {**CALL, "kind": "sms", "duration_s": 0, "urls": ["javascript:alert(1)", "http://a.b/c"]}
    rec = decode_input("signals.telecom", json.dumps(sms).encode())
    assert rec.urls == ["javascript:alert(1)", "http://a.b/c"]


def test_garbage_counterpart_is_kept_as_presented() -> None:
    rec = decode_input("signals.telecom", json.dumps({**CALL, "counterpart": " Unknown "}).encode())
    assert rec.counterpart == "unknown"


def test_a_registry_tombstone_names_the_subject_it_erases_by_its_key() -> None:
    assert tombstone_subject(b"S00042") == "S00042"
    assert tombstone_subject(" S1\n".encode()) == " S1\n"  # any id a record may carry can be erased
    for key in (None, b"", b"\xff\xfe", b"x" * 129):
        with pytest.raises(InvalidRecord) as refused:
            tombstone_subject(key)
        assert refused.value.field == "subject_id"


@pytest.mark.parametrize("name", ["王*", "王**", "王*明", "欧阳**", "Z***"])
def test_masked_names_as_registries_write_them_are_taken(name: str) -> None:
    assert decode_input("registry.subjects", json.dumps({**SUBJ, "name_masked": name}).encode())
