"""An SMPP gateway through Jasmin's HTTP API: /send with the user's credentials and the whole text (UCS-2),
delivery receipts pushed back to our callback (`dlr-url`), acknowledged with `ACK/Jasmin`."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Mapping
from urllib.parse import urlencode

import aiohttp

from dispatch.sms._deliver import Receipt, SendResult, Sent, Verdict
from schemas.records import SmsTask

# message_status of a terminal (level 2) receipt; the SMSC's acknowledgement (level 1) settles nothing
FINAL = {"DELIVRD": True, "UNDELIV": False, "EXPIRED": False, "REJECTD": False, "DELETED": False}
ACK = "ACK/Jasmin"  # what Jasmin waits for, or it sends the receipt again


def verdict(status: int, body: str) -> Verdict:
    """What Jasmin's answer to /send means: `Success "id"`, or `Error "…"` with 400 (arguments), 403 (credentials,
    charging, throughput), 412 (no route), 500."""
    if status == 200 and body.startswith("Success"):
        return "accepted"
    if status == 403 and "throughput" in body:
        return "throttled"
    if status in (502, 503, 504):  # a proxy in front of Jasmin: the request may have reached it
        return "uncertain"
    return "retry" if status >= 500 else "rejected"


def callback_token(key: str, message_id: str) -> str:
    """What proves a receipt posted to our callback comes from a gateway we gave its URL: an HMAC of the message
    id under our secret (a message id can be guessed; its token cannot)."""
    return hmac.new(key.encode(), message_id.encode(), hashlib.sha256).hexdigest()[:32]


def _with_query(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def receipt_of(form: Mapping[str, str]) -> Receipt | None:
    """A receipt from a DLR callback's fields (`id`, `message_status`, `level`, `err`); None for an SMSC
    acknowledgement or a status that is not final."""
    status = form.get("message_status", "")
    if form.get("level") == "1" or status not in FINAL:
        return None
    return Receipt(FINAL[status], f"receipt {status} err {form.get('err', '')}".strip(), ref=form.get("id", ""),
                   message_id=form.get("message_id", ""))  # ours, in the dlr-url: found even without Jasmin's id


class Jasmin:
    """Jasmin's HTTP API (an SMPP gateway)."""

    name = "jasmin"

    def __init__(self, session: aiohttp.ClientSession, url: str, username: str, password: str, receipt_url: str,
                 timeout_s: float = 5.0) -> None:
        self._session, self._url = session, url.rstrip("/") + "/send"
        self._auth = {"username": username, "password": password}
        self._token_key = password
        self._receipt_url = receipt_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, task: SmsTask) -> SendResult:
        """One /send: the text as UCS-2 (coding 8), a terminal receipt asked for."""
        form = {**self._auth, "to": task.to.lstrip("+"), "coding": "8",
                "hex-content": task.text.encode("utf-16-be").hex(), "dlr": "yes", "dlr-level": "2",
                "dlr-method": "POST", "dlr-url": _with_query(self._receipt_url, message_id=task.message_id,
                                                             token=callback_token(self._token_key, task.message_id))}
        try:
            async with self._session.post(self._url, data=form, timeout=self._timeout) as resp:
                body = (await resp.text()).strip()
                result = verdict(resp.status, body)
                ref = body.split('"')[1] if result == "accepted" and body.count('"') >= 2 else ""
                return SendResult(result, ref=ref, detail=f"HTTP {resp.status} {body}"[:300])
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:  # the request never left
            return SendResult("retry", detail=f"unreachable: {exc}"[:300])
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return SendResult("uncertain", detail=f"no answer: {type(exc).__name__}")

    async def pull(self, waiting: list[Sent]) -> list[Receipt]:
        """Nothing to pull: Jasmin pushes its receipts."""
        return []
