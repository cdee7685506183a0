"""A local SMS gateway for tests and the demo, speaking three real providers' shapes on one port.

    POST /  x-acs-action: SendSms | QuerySendDetails        Alibaba Cloud SMS (ACS3-HMAC-SHA256 checked)
    POST /  X-TC-Action: SendSms | PullSmsSendStatus        Tencent Cloud SMS (TC3-HMAC-SHA256 checked)
    POST /send                                              Jasmin's HTTP API; receipts POSTed to `dlr-url`
    POST /admin/fail      {count, kind}      the next `count` sends fail in the provider's words: throttle,
                                             business, server, hang (answers after the client gave up, having
                                             taken the message); or {count, status}
    POST /admin/receipts  {delay_s, status}  receipts come `delay_s` after a send: delivered, failed, or none
    GET  /admin/messages                     every message by our id (Jasmin's by line and text): attempts, deliveries,
                                             the order of deliveries, the rendered text, receipts handed out

Like the real ones, it sends a message again when asked again (Alibaba documents SendSms as not idempotent): a
second delivery of one id shows here as `deliveries: 2`. Templates are those of dispatch/config/sms_providers.toml
with the texts of templates.toml, as a provider would have approved them.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import tomllib
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp
from aiohttp import web

from dispatch.plan import templates
from dispatch.sms._templates import PROVIDERS_FILE, template_params

CHINA = timezone(timedelta(hours=8))
HANG_S = 8.0  # a "hang" answers after this: past the adapter's 5 s timeout, and then takes the message
FAILURES = {  # an injected failure in each provider's words: (HTTP status, code or body)
    "alibaba": {"throttle": (200, "isv.BUSINESS_LIMIT_CONTROL"), "business": (200, "isv.MOBILE_NUMBER_ILLEGAL"),
                "server": (200, "isp.SYSTEM_ERROR")},
    "tencent": {"throttle": (200, "LimitExceeded.PhoneNumberThirtySecondLimit"),
                "business": (200, "InvalidParameterValue.IncorrectPhoneNumber"),
                "server": (200, "InternalError.Timeout")},
    "jasmin": {"throttle": (403, 'Error "User throughput exceeded"'), "business": (412, 'Error "No route found"'),
               "server": (500, 'Error "Cannot send submit_sm, check SMPPClientManagerPB log file for details"')},
}


def _registry() -> dict[str, dict[str, tuple[str, str]]]:
    """Per provider: template code → (signature, content in the provider's placeholder syntax)."""
    texts, approved = templates(), tomllib.loads(PROVIDERS_FILE.read_text())
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for provider, section in approved.items():
        out[provider] = {}
        for name, code in section["templates"].items():
            part, fraud_type = name.split(".")
            text = texts[part][fraud_type].split("】", 1)[1]  # the signature is registered apart
            params = list(template_params(texts[part][fraud_type], texts))
            for i, param in enumerate(params, 1):
                text = text.replace("{%s}" % param, "${%s}" % param if provider == "alibaba" else "{%d}" % i)
            out[provider][code] = (section["signs"][part], text)
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def acs3_signature(secret: str, method: str, query: dict[str, str], headers: dict[str, str], signed: list[str],
                   payload_hash: str) -> str:
    """Alibaba Cloud's V3 request signature (ACS3-HMAC-SHA256), computed from its documented steps."""
    enc = lambda s: quote(s, safe="-_.~")  # noqa: E731
    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    canonical = "\n".join([method, "/", canonical_query, canonical_headers, ";".join(signed), payload_hash])
    return hmac.new(secret.encode(), f"ACS3-HMAC-SHA256\n{_sha256(canonical.encode())}".encode(),
                    hashlib.sha256).hexdigest()


def tc3_signature(secret_key: str, timestamp: int, service: str, content_type: str, host: str, body: bytes) -> str:
    """Tencent Cloud's TC3-HMAC-SHA256 request signature, computed from its documented steps."""
    canonical = f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n{_sha256(body)}"
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{_sha256(canonical.encode())}"
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


Handler = Callable[[web.Request], Awaitable[web.Response]]


class Gateway:
    """The gateway's state: messages, injected failures, receipts due."""

    def __init__(self, key_id: str, secret: str, app_id: str) -> None:
        self.key_id, self.secret, self.app_id = key_id, secret, app_id
        self.registry = _registry()
        self.messages: dict[str, dict[str, Any]] = {}
        self.delivered = 0
        self.fail, self.fail_kind = 0, "server"
        self.receipt_delay_s, self.receipt_status = 0.0, "delivered"
        self.tencent_reports: list[dict[str, Any]] = []  # handed out once each, as PullSmsSendStatus does
        self.tasks: set[asyncio.Task] = set()

    def injected(self) -> str | None:
        """The failure this send must give, if one was asked for."""
        if self.fail <= 0:
            return None
        self.fail -= 1
        return self.fail_kind

    def attempt(self, message_id: str, provider: str, to: str, text: str) -> dict[str, Any]:
        msg = self.messages.setdefault(message_id, {"provider": provider, "to": to, "text": text, "attempts": 0,
                                                    "deliveries": 0})
        msg["attempts"] += 1
        return msg

    def deliver(self, msg: dict[str, Any], ref: str) -> None:
        """A send the operator takes: counted, its receipt due after the set delay."""
        msg["deliveries"] += 1
        self.delivered += 1
        msg["order"], msg["ref"] = self.delivered, ref
        msg["receipt_due"] = time.time() + self.receipt_delay_s if self.receipt_status != "none" else None
        msg["receipt_ok"] = self.receipt_status == "delivered"
        msg["receipts"] = 0
        msg["sent_day"] = datetime.now(CHINA).strftime("%Y%m%d")  # what Alibaba's QuerySendDetails is asked by

    def receipt_ready(self, msg: dict[str, Any]) -> bool:
        return msg.get("receipt_due") is not None and time.time() >= msg["receipt_due"]


def _alibaba(gw: Gateway) -> Handler:
    """Alibaba Cloud's SendSms and QuerySendDetails, signatures checked."""
    async def alibaba(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        fields = dict(part.split("=", 1) for part in auth.removeprefix("ACS3-HMAC-SHA256 ").split(","))
        body = await request.read()
        query = dict(request.query)
        headers = {k.lower(): v for k, v in request.headers.items()}
        signed = fields.get("SignedHeaders", "").split(";")
        if fields.get("Credential") != gw.key_id:
            return _ali_error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        expected = acs3_signature(gw.secret, request.method, query, headers, signed,
                                  headers.get("x-acs-content-sha256", _sha256(body)))
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return _ali_error(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
        action = request.headers["x-acs-action"]
        if action == "SendSms":
            return await ali_send(query)
        if action == "QuerySendDetails":
            return ali_query(query)
        return _ali_error(400, "InvalidAction.NotFound", action)

    async def ali_send(q: dict[str, str]) -> web.Response:
        code = q.get("TemplateCode", "")
        if code not in gw.registry["alibaba"]:
            return _ali_ok({"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"})
        sign, content = gw.registry["alibaba"][code]
        if q.get("SignName") != sign:
            return _ali_ok({"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "签名不合法"})
        params = json.loads(q.get("TemplateParam") or "{}")
        for name in template_names(content, "${", "}"):
            if name not in params:
                return _ali_ok({"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": f"模板缺少变量 {name}"})
            content = content.replace("${%s}" % name, str(params[name]))
        phone = q.get("PhoneNumbers", "")
        msg = gw.attempt(q.get("OutId") or f"ali-{uuid.uuid4().hex}", "alibaba",
                         "+86" + phone if len(phone) == 11 else "+" + phone, f"【{sign}】{content}")
        fail = gw.injected()
        if fail == "hang":
            await asyncio.sleep(HANG_S)
        if fail in FAILURES["alibaba"]:
            return _ali_ok({"Code": FAILURES["alibaba"][fail][1], "Message": f"injected {fail}"})
        biz_id = f"{int(time.time() * 1000)}^{uuid.uuid4().int % 10**10}"
        gw.deliver(msg, biz_id)
        return _ali_ok({"Code": "OK", "Message": "OK", "BizId": biz_id})

    def ali_query(q: dict[str, str]) -> web.Response:
        phone, biz_id = q.get("PhoneNumber", ""), q.get("BizId")
        dtos = []
        for mid, msg in gw.messages.items():
            if msg["provider"] != "alibaba" or not msg.get("ref") or not msg["to"].endswith(phone):
                continue
            if (biz_id and msg["ref"] != biz_id) or q.get("SendDate") != msg["sent_day"]:
                continue
            ready = gw.receipt_ready(msg)
            if ready:
                msg["receipts"] += 1
            dtos.append({"OutId": mid, "PhoneNum": phone, "Content": msg["text"], "SendStatus": (
                (3 if msg["receipt_ok"] else 2) if ready else 1), "ErrCode": "DELIVERED" if ready and msg["receipt_ok"]
                else ("MK:0001" if ready else ""), "ReceiveDate": _cn_time() if ready else "",
                "SendDate": _cn_time()})
        return _ali_ok({"Code": "OK", "Message": "OK", "TotalCount": len(dtos),
                        "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos}})

    return alibaba


def _tencent(gw: Gateway) -> Handler:
    """Tencent Cloud's SendSms and PullSmsSendStatus, signatures checked."""
    async def tencent(request: web.Request) -> web.Response:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        try:
            credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
            signature = auth.split("Signature=", 1)[1].strip()
            secret_id, _, service, _ = credential.split("/")
            timestamp = int(request.headers["X-TC-Timestamp"])
        except (IndexError, KeyError, ValueError):
            return _tc_error("AuthFailure.InvalidAuthorization", "Authorization is malformed")
        if secret_id != gw.key_id:
            return _tc_error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        expected = tc3_signature(gw.secret, timestamp, service, request.headers.get("Content-Type", ""),
                                 request.headers.get("Host", ""), body)
        if not hmac.compare_digest(expected, signature):
            return _tc_error("AuthFailure.SignatureFailure", "The provided credentials could not be validated")
        req = json.loads(body or b"{}")
        if req.get("SmsSdkAppId") != gw.app_id:
            return _tc_error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify failed")
        action = request.headers["X-TC-Action"]
        if action == "SendSms":
            return await tc_send(req)
        if action == "PullSmsSendStatus":
            return tc_pull(int(req.get("Limit", 100)))
        return _tc_error("InvalidAction", action)

    async def tc_send(req: dict[str, Any]) -> web.Response:
        code, sign = str(req.get("TemplateId", "")), req.get("SignName")
        if code not in gw.registry["tencent"]:
            return _tc_error("FailedOperation.TemplateIncorrectOrUnapproved", "template not approved")
        expected_sign, content = gw.registry["tencent"][code]
        if sign != expected_sign:
            return _tc_error("FailedOperation.SignatureIncorrectOrUnapproved", "signature not approved")
        values = list(req.get("TemplateParamSet") or [])
        if len(values) != len(template_names(content, "{", "}")):
            return _tc_error("FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "parameters do not match")
        for i, value in enumerate(values, 1):
            content = content.replace("{%d}" % i, value)
        phone = (req.get("PhoneNumberSet") or [""])[0]
        msg = gw.attempt(req.get("SessionContext") or f"tc-{uuid.uuid4().hex}", "tencent", phone,
                         f"【{sign}】{content}")
        msg["session"] = req.get("SessionContext", "")
        fail = gw.injected()
        if fail == "hang":
            await asyncio.sleep(HANG_S)
        status = {"PhoneNumber": phone, "Fee": 1, "SessionContext": msg["session"], "IsoCode": "CN"}
        if fail in FAILURES["tencent"]:
            status.update(SerialNo="", Code=FAILURES["tencent"][fail][1], Message=f"injected {fail}")
        else:
            serial = f"2433:{uuid.uuid4().int % 10**20}"
            gw.deliver(msg, serial)
            gw.tencent_reports.append(msg)
            status.update(SerialNo=serial, Code="Ok", Message="send success")
        return _tc_json({"Response": {"SendStatusSet": [status], "RequestId": uuid.uuid4().hex}})

    def tc_pull(limit: int) -> web.Response:
        ready = [m for m in gw.tencent_reports if gw.receipt_ready(m)][:limit]
        for msg in ready:
            gw.tencent_reports.remove(msg)
            msg["receipts"] += 1
        reports = [{"UserReceiveTime": _cn_time(), "CountryCode": "86", "SubscriberNumber": m["to"][3:],
                    "PhoneNumber": m["to"], "SerialNo": m["ref"], "ReportStatus": "SUCCESS" if m["receipt_ok"]
                    else "FAIL", "Description": "用户短信送达成功" if m["receipt_ok"] else "用户短信接收失败",
                    "SessionContext": m["session"]} for m in ready]
        return _tc_json({"Response": {"PullSmsSendStatusSet": reports, "RequestId": uuid.uuid4().hex}})

    return tencent


def _jasmin(gw: Gateway) -> Handler:
    """Jasmin's /send, receipts pushed to dlr-url."""
    async def jasmin_send(request: web.Request) -> web.Response:
        form = {**request.query, **(await request.post())}
        if len(str(form.get("password", ""))) > 8 or not form.get("to") or not (form.get("content")
                                                                                 or form.get("hex-content")):
            return web.Response(status=400, text='Error "Mandatory argument not found or invalid"')
        if form.get("username") != gw.key_id or form.get("password") != gw.secret:
            return web.Response(status=403, text=f'Error "Authentication failure for username:{form.get("username")}"')
        text = (bytes.fromhex(str(form["hex-content"])).decode("utf-16-be") if form.get("hex-content")
                else str(form["content"]))
        msgid = str(uuid.uuid4())
        # Jasmin knows no id of ours: its attempts at one text to one line are counted as one message's
        line = "+" + str(form["to"])
        msg = gw.attempt(f"jasmin:{line}:{_sha256(text.encode())[:12]}", "jasmin", line, text)
        fail = gw.injected()
        if fail == "hang":
            await asyncio.sleep(HANG_S)
        if fail in FAILURES["jasmin"]:
            status, body = FAILURES["jasmin"][fail]
            return web.Response(status=status, text=body)
        gw.deliver(msg, msgid)
        if form.get("dlr") == "yes" and form.get("dlr-url"):
            task = asyncio.get_running_loop().create_task(push_dlr(msg, msgid, str(form["dlr-url"])))
            gw.tasks.add(task)
            task.add_done_callback(gw.tasks.discard)
        return web.Response(text=f'Success "{msgid}"')

    async def push_dlr(msg: dict[str, Any], msgid: str, url: str) -> None:
        """POST the terminal receipt to `dlr-url` when due, again every second until it is acknowledged."""
        if msg["receipt_due"] is None:
            return
        await asyncio.sleep(max(0.0, msg["receipt_due"] - time.time()))
        form = {"id": msgid, "message_status": "DELIVRD" if msg["receipt_ok"] else "UNDELIV", "level": "2",
                "connector": "smsc", "sub": "001", "dlvrd": "001" if msg["receipt_ok"] else "000", "err": "000",
                "subdate": datetime.now().strftime("%y%m%d%H%M"), "donedate": datetime.now().strftime("%y%m%d%H%M")}
        async with aiohttp.ClientSession() as session:
            for _ in range(60):
                try:
                    async with session.post(url, data=form) as resp:
                        msg["receipts"] += 1
                        if (await resp.text()).strip() == "ACK/Jasmin":
                            msg["receipt_acked"] = True
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)

    return jasmin_send


def _admin(gw: Gateway) -> tuple[Handler, Handler, Handler]:
    """Failures and receipts on request; every message."""
    async def fail(request: web.Request) -> web.Response:
        body = await request.json()
        gw.fail = int(body["count"])
        gw.fail_kind = body.get("kind") or {0: "hang", 429: "throttle"}.get(int(body.get("status", 503)), "server")
        return web.json_response({"ok": True})

    async def receipts(request: web.Request) -> web.Response:
        body = await request.json()
        gw.receipt_delay_s = float(body.get("delay_s", 0))
        gw.receipt_status = body.get("status", "delivered")
        return web.json_response({"ok": True})

    async def messages(_: web.Request) -> web.Response:
        return web.json_response(gw.messages)

    return fail, receipts, messages


def make_app(key_id: str = "yujing", secret: str = "secret08", app_id: str = "1400000001") -> web.Application:
    """The gateway as an aiohttp application, knowing one set of credentials."""
    gw = Gateway(key_id, secret, app_id)
    alibaba, tencent, jasmin_send = _alibaba(gw), _tencent(gw), _jasmin(gw)
    fail, receipts, messages = _admin(gw)


    async def root(request: web.Request) -> web.Response:
        if "x-acs-action" in request.headers:
            return await alibaba(request)
        if "X-TC-Action" in request.headers:
            return await tencent(request)
        return web.Response(status=404, text="neither an Alibaba nor a Tencent request")

    app = web.Application()
    app.add_routes([web.post("/", root), web.post("/send", jasmin_send), web.get("/send", jasmin_send),
                    web.post("/admin/fail", fail), web.post("/admin/receipts", receipts),
                    web.get("/admin/messages", messages)])
    return app


def template_names(content: str, open_: str, close: str) -> list[str]:
    """The placeholders of a template's content, in order."""
    names, rest = [], content
    while open_ in rest:
        rest = rest.split(open_, 1)[1]
        name, _, rest = rest.partition(close)
        names.append(name)
    return names


def _cn_time() -> str:
    return datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _ali_ok(body: dict[str, Any]) -> web.Response:
    return web.json_response({"RequestId": uuid.uuid4().hex.upper(), **body})


def _ali_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"RequestId": uuid.uuid4().hex.upper(), "Code": code, "Message": message}, status=status)


def _tc_error(code: str, message: str) -> web.Response:
    return _tc_json({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": uuid.uuid4().hex}})


def _tc_json(body: dict[str, Any]) -> web.Response:
    # Tencent's content type exactly: its SDK looks for errors only under this one
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode(),
                        headers={"Content-Type": "application/json"})


def serve(port: int, key_id: str, secret: str, app_id: str) -> None:
    """Run the gateway on 127.0.0.1:`port`, knowing these credentials."""
    web.run_app(make_app(key_id, secret, app_id), host="127.0.0.1", port=port, print=None)
