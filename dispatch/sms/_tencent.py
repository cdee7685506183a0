"""Tencent Cloud SMS (2021-01-11) through its official SDK: SendSms with an approved template, receipts pulled
with PullSmsSendStatus (every report of the app, each once; SessionContext carries our message id)."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from dispatch.sms._deliver import Receipt, SendResult, Sent, Verdict
from dispatch.sms._templates import ProviderTemplates
from schemas.records import SmsTask

# Codes of a SendStatus (or of an error the API raised); any other InternalError is retried, the rest rejected.
CODES: dict[str, Verdict] = {
    "Ok": "accepted",
    "LimitExceeded.PhoneNumberThirtySecondLimit": "throttled",
    "LimitExceeded.PhoneNumberOneHourLimit": "throttled",
    "LimitExceeded.DeliveryFrequencyLimit": "throttled",
    "RequestLimitExceeded": "throttled",
    "InternalError.Timeout": "uncertain",  # the operator may have the message
    "InternalError.SendAndRecvFail": "uncertain",
    "ServerNetworkError": "uncertain",  # a non-200 answer: the request arrived
    "LimitExceeded.PhoneNumberDailyLimit": "rejected",  # not again today
    "InvalidParameterValue.IncorrectPhoneNumber": "rejected",
    "FailedOperation.TemplateIncorrectOrUnapproved": "rejected",
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": "rejected",
    "FailedOperation.SignatureIncorrectOrUnapproved": "rejected",
    "FailedOperation.InsufficientBalanceInSmsPackage": "rejected",
    "FailedOperation.PhoneNumberInBlacklist": "rejected",
    "AuthFailure.SignatureFailure": "rejected",
    "AuthFailure.SecretIdNotFound": "rejected",
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": "rejected",
}
PULL_LIMIT = 100


def verdict(code: str) -> Verdict:
    """What a Tencent code means for the message."""
    return CODES.get(code) or ("retry" if code.startswith("InternalError") else "rejected")


class Tencent:
    """Tencent Cloud SMS."""

    name = "tencent"

    def __init__(self, url: str, secret_id: str, secret_key: str, app_id: str, templates: ProviderTemplates,
                 timeout_s: float = 5.0) -> None:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        profile = ClientProfile(httpProfile=HttpProfile(endpoint=parts.netloc, protocol=parts.scheme,
                                                        reqTimeout=int(timeout_s)))
        self._client = sms_client.SmsClient(credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)
        self._app_id, self._templates = app_id, templates

    async def send(self, task: SmsTask) -> SendResult:
        """SendSms to one number; the template's parameters by position."""
        t = self._templates.for_task(task)
        request = models.SendSmsRequest()
        request.PhoneNumberSet, request.SmsSdkAppId = [task.to], self._app_id
        request.SignName, request.TemplateId = t.sign, t.code
        request.TemplateParamSet, request.SessionContext = list(t.params.values()), task.message_id
        try:
            resp = await asyncio.to_thread(self._client.SendSms, request)
        except TencentCloudSDKException as exc:
            return _failure(exc)
        if not resp.SendStatusSet:
            return SendResult("uncertain", detail="an answer without a send status")
        status = resp.SendStatusSet[0]
        return SendResult(verdict(status.Code), ref=status.SerialNo or "", detail=f"{status.Code}: {status.Message}")

    async def pull(self, waiting: list[Sent]) -> list[Receipt]:
        """Every report waiting at Tencent for this app (each is handed out once), matched by SessionContext."""
        if not waiting:
            return []
        receipts: list[Receipt] = []
        while True:
            request = models.PullSmsSendStatusRequest()
            request.Limit, request.SmsSdkAppId = PULL_LIMIT, self._app_id
            try:
                resp = await asyncio.to_thread(self._client.PullSmsSendStatus, request)
            except TencentCloudSDKException:
                return receipts
            batch = resp.PullSmsSendStatusSet or []
            receipts += [Receipt(s.ReportStatus == "SUCCESS", f"receipt {s.ReportStatus} {s.Description or ''}".strip(),
                                 message_id=s.SessionContext or "", ref=s.SerialNo or "") for s in batch]
            if len(batch) < PULL_LIMIT:
                return receipts


def _failure(exc: TencentCloudSDKException) -> SendResult:
    code, message = exc.get_code() or "", exc.get_message() or ""
    if code != "ClientNetworkError":
        return SendResult(verdict(code), detail=f"{code}: {message}"[:300])
    if any(s in message for s in ("Connection refused", "NewConnectionError", "ConnectTimeout",
                                  "connect timeout")):  # the request never left
        return SendResult("retry", detail=f"unreachable: {message}"[:300])
    return SendResult("uncertain", detail=f"no answer: {message}"[:300])
