"""Alibaba Cloud SMS (dysmsapi 2017-05-25) through its official SDK: SendSms with an approved template, receipts
pulled with QuerySendDetails (by BizId, or by our OutId when the send's answer was lost)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

from dispatch.sms._deliver import Receipt, SendResult, Sent, Verdict
from dispatch.sms._templates import ProviderTemplates
from schemas.records import SmsTask

CHINA = timezone(timedelta(hours=8))  # SendDate of QuerySendDetails is a day in China
# Business codes in SendSms's answer (HTTP 200) or a refused request's body; any other isp.* is retried, the rest
# rejected: SendSms is not idempotent, so only what surely did not send is sent again.
CODES: dict[str, Verdict] = {
    "OK": "accepted",
    "isv.BUSINESS_LIMIT_CONTROL": "throttled",  # per-number limits: 1 a minute, 5 an hour by default
    "Throttling.User": "throttled",
    "Throttling.Api": "throttled",
    "isp.SYSTEM_ERROR": "retry",
    "ServiceUnavailable": "retry",
    "InternalError": "uncertain",  # a 5xx of the gateway: the message may have gone
    "isv.DAY_LIMIT_CONTROL": "rejected",  # the number's daily limit: not again today
    "isv.MOBILE_NUMBER_ILLEGAL": "rejected",
    "isv.TEMPLATE_MISSING_PARAMETERS": "rejected",
    "isv.SMS_TEMPLATE_ILLEGAL": "rejected",
    "isv.SMS_SIGNATURE_ILLEGAL": "rejected",
    "isv.AMOUNT_NOT_ENOUGH": "rejected",
    "isv.BLACK_KEY_CONTROL_LIMIT": "rejected",
    "SignatureDoesNotMatch": "rejected",
    "InvalidAccessKeyId.NotFound": "rejected",
}
SEND_STATUS = {1: None, 2: False, 3: True}  # waiting for the receipt, failed, delivered
SEND_DATE_SLACK_MS = 15 * 60_000  # a message recorded this long after it was sent (retries, a slow answer)


def verdict(code: str) -> Verdict:
    """What an Alibaba answer code means for the message."""
    return CODES.get(code) or ("retry" if code.startswith("isp.") else "rejected")


def national(e164: str) -> str:
    """A number as SendSms takes it: mainland numbers without +86, others with their country code, no plus."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


class Alibaba:
    """Alibaba Cloud SMS."""

    name = "alibaba"

    def __init__(self, url: str, key_id: str, secret: str, templates: ProviderTemplates,
                 timeout_s: float = 5.0) -> None:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        self._client = Client(Config(access_key_id=key_id, access_key_secret=secret, endpoint=parts.netloc,
                                     protocol=parts.scheme))
        self._runtime = RuntimeOptions(read_timeout=int(timeout_s * 1000), connect_timeout=int(timeout_s * 1000),
                                       autoretry=False)  # our retries, by the answer's meaning
        self._templates = templates

    async def send(self, task: SmsTask) -> SendResult:
        """SendSms; OutId carries our message id, so a lost answer can be found again by QuerySendDetails."""
        t = self._templates.for_task(task)
        request = models.SendSmsRequest(phone_numbers=national(task.to), sign_name=t.sign, template_code=t.code,
                                        template_param=json.dumps(t.params, ensure_ascii=False),
                                        out_id=task.message_id)
        try:
            resp = await self._client.send_sms_with_options_async(request, self._runtime)
        except TeaException as exc:
            return _failure(exc)
        body = resp.body
        return SendResult(verdict(body.code or ""), ref=body.biz_id or "", detail=f"{body.code}: {body.message}")

    async def pull(self, waiting: list[Sent]) -> list[Receipt]:
        """QuerySendDetails for each message: its final status once the operator reported it."""
        receipts = []
        for sent in waiting:
            receipt = await self._query(sent)
            if receipt is not None:
                receipts.append(receipt)
        return receipts

    async def _query(self, sent: Sent) -> Receipt | None:
        # the day it was sent in China, and the day before when it was recorded just after midnight
        days = dict.fromkeys(datetime.fromtimestamp(ms / 1000, CHINA).strftime("%Y%m%d")
                             for ms in (sent.accepted_ms, sent.accepted_ms - SEND_DATE_SLACK_MS))
        for day in days:
            request = models.QuerySendDetailsRequest(phone_number=national(sent.to), biz_id=sent.ref or None,
                                                     send_date=day, page_size=50, current_page=1)
            try:
                resp = await self._client.query_send_details_with_options_async(request, self._runtime)
            except TeaException:
                return None  # asked again at the next pull
            dtos = resp.body.sms_send_detail_dtos
            for dto in (dtos.sms_send_detail_dto or []) if dtos else []:
                if dto.out_id == sent.message_id:
                    delivered = SEND_STATUS.get(dto.send_status or 1)
                    if delivered is None:
                        return None  # the operator has not reported yet
                    return Receipt(delivered, f"receipt {dto.err_code or 'DELIVERED'} at {dto.receive_date}",
                                   message_id=sent.message_id, ref=sent.ref)
        return None


def _failure(exc: TeaException) -> SendResult:
    code = getattr(exc, "code", None)
    if code:  # the API answered with an error body
        return SendResult(verdict(code), detail=f"{code}: {getattr(exc, 'message', '')}"[:300])
    message = str(getattr(exc, "message", "") or exc)
    if "Cannot connect" in message or "Connection timeout" in message:  # the request never left: send again
        return SendResult("retry", detail=f"unreachable: {message}"[:300])
    return SendResult("uncertain", detail=f"no answer: {message}"[:300])
