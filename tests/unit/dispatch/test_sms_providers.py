"""The providers' answers mapped to what the adapter does (table-tested), their number formats, Jasmin's
receipts, and the approved templates a message goes out as."""
from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.plan import templates
from dispatch.sms import ProviderTemplates, TemplateError, receipt_of
from dispatch.sms._alibaba import national
from dispatch.sms._alibaba import verdict as alibaba_verdict
from dispatch.sms._jasmin import verdict as jasmin_verdict
from dispatch.sms._tencent import verdict as tencent_verdict
from schemas.records import FRAUD_TYPES, SmsTask


@pytest.mark.parametrize(("code", "expected"), [
    ("OK", "accepted"),
    ("isv.BUSINESS_LIMIT_CONTROL", "throttled"),
    ("isp.SYSTEM_ERROR", "retry"),
    ("InternalError", "uncertain"),  # a 5xx of the gateway
    ("isp.SOMETHING_NEW", "retry"),
    ("isv.DAY_LIMIT_CONTROL", "rejected"),
    ("isv.MOBILE_NUMBER_ILLEGAL", "rejected"),
    ("SignatureDoesNotMatch", "rejected"),
    ("isv.SOMETHING_NEW", "rejected"),  # SendSms is not idempotent: what is not known to have failed is not resent
])
def test_alibaba_codes(code: str, expected: str) -> None:
    assert alibaba_verdict(code) == expected


@pytest.mark.parametrize(("code", "expected"), [
    ("Ok", "accepted"),
    ("LimitExceeded.PhoneNumberThirtySecondLimit", "throttled"),
    ("RequestLimitExceeded", "throttled"),
    ("InternalError.Timeout", "uncertain"),  # the operator may have the message: never sent again
    ("InternalError.SendAndRecvFail", "uncertain"),
    ("ServerNetworkError", "uncertain"),
    ("InternalError.RestApiInterfaceNotExist", "retry"),
    ("LimitExceeded.PhoneNumberDailyLimit", "rejected"),
    ("FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "rejected"),
    ("AuthFailure.SignatureFailure", "rejected"),
])
def test_tencent_codes(code: str, expected: str) -> None:
    assert tencent_verdict(code) == expected


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, 'Success "07033084-5cfd-4812-90a4-e4d24ffb6e3d"', "accepted"),
    (403, 'Error "User throughput exceeded"', "throttled"),
    (403, 'Error "Authentication failure for username:yujing"', "rejected"),
    (412, 'Error "No route found"', "rejected"),
    (400, 'Error "Mandatory argument not found"', "rejected"),
    (500, 'Error "Cannot send submit_sm"', "retry"),
    (504, "Gateway Timeout", "uncertain"),  # a proxy in front: the request may have reached Jasmin
])
def test_jasmin_answers(status: int, body: str, expected: str) -> None:
    assert jasmin_verdict(status, body) == expected


@pytest.mark.parametrize(("form", "expected"), [
    ({"id": "j1", "message_status": "DELIVRD", "level": "2"}, (True, "j1")),
    ({"id": "j1", "message_status": "UNDELIV", "level": "2", "err": "001"}, (False, "j1")),
    ({"id": "j1", "message_status": "EXPIRED", "level": "2"}, (False, "j1")),
    ({"id": "j1", "message_status": "ESME_ROK", "level": "1"}, None),  # the SMSC's acknowledgement settles nothing
    ({"id": "j1", "message_status": "ENROUTE", "level": "2"}, None),
    ({"id": "j1", "message_status": "DELIVRD", "level": "2", "message_id": "m-1"}, (True, "j1")),
])
def test_jasmin_receipts(form: dict[str, str], expected: tuple[bool, str] | None) -> None:
    receipt = receipt_of(form)
    assert (receipt and (receipt.delivered, receipt.ref)) == expected


def test_numbers_as_alibaba_takes_them() -> None:
    assert (national("+8613800000001"), national("+85261234567")) == ("13800000001", "85261234567")


def _task(fraud_type: str, kind: str = "warning") -> SmsTask:
    return SmsTask(warning_id="w", tier="T3", fraud_type=fraud_type, ts=1, message_id="m", to="+8613800000001",  # type: ignore[arg-type]
                   text="x", not_before_ts=1, expires_ts=2, kind=kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", ["alibaba", "tencent"])
def test_every_fraud_type_and_kind_has_an_approved_template(provider: str) -> None:
    approved = ProviderTemplates(provider, templates())
    seen = {approved.for_task(_task(ft, kind)).code for ft in FRAUD_TYPES for kind in ("warning", "reminder")}
    assert len(seen) == 2 * len(FRAUD_TYPES)
    romance = approved.for_task(_task("romance"))
    assert (romance.name, romance.params, romance.sign) == ("sms.romance", {"hotline": "96110"}, "反诈中心")
    assert approved.for_task(_task("romance", "reminder")).sign == "反诈提醒"


def test_a_templates_file_missing_a_template_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text('[alibaba]\nsigns = {sms = "反诈中心", reminder = "反诈提醒"}\n[alibaba.templates]\n'
                    '"sms.romance" = "SMS_1"\n')
    with pytest.raises(TemplateError, match="lacks sms.rebate_task"):
        ProviderTemplates("alibaba", templates(), path)


def test_a_jasmin_receipt_carries_our_message_id_from_its_callback_url() -> None:
    receipt = receipt_of({"id": "j1", "message_status": "DELIVRD", "level": "2", "message_id": "m-1"})
    assert receipt is not None and receipt.message_id == "m-1"
