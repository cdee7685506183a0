"""Delivering `dispatch.sms` through a real SMS provider (Alibaba Cloud, Tencent Cloud, an SMPP gateway through
Jasmin): approved templates, the provider's answer mapped to retry, throttle or give up, our own ledger against
sending twice, and only the provider's receipt making `sms_delivered`."""
from typing import Any

from dispatch.sms._deliver import (
    Accepted,
    Deferred,
    Provider,
    Receipt,
    RetryPolicy,
    SendResult,
    Sent,
    TokenBucket,
    deliver,
    failed,
    settled,
)
from dispatch.sms._ledger import DONE_TTL_S, Ledger, adapter_prefix, done_key, forget_waiting, waiting_keys
from dispatch.sms._templates import ProviderTemplates, Template, TemplateError

__all__ = ["ACK", "Accepted", "Alibaba", "DONE_TTL_S", "Deferred", "Jasmin", "Ledger", "Provider",
           "ProviderTemplates", "Receipt", "RetryPolicy", "SendResult", "Sent", "Template", "TemplateError", "Tencent",
           "TokenBucket", "adapter_prefix", "callback_token", "deliver", "done_key", "failed", "forget_waiting",
           "receipt_of", "settled", "waiting_keys"]

_PROVIDERS = {"Alibaba": "_alibaba", "Tencent": "_tencent", "Jasmin": "_jasmin", "ACK": "_jasmin",
              "receipt_of": "_jasmin", "callback_token": "_jasmin"}


def __getattr__(name: str) -> Any:
    # the providers' SDKs load only in the SMS adapter, not in every process that imports the ledger
    if name in _PROVIDERS:
        import importlib

        return getattr(importlib.import_module(f"dispatch.sms.{_PROVIDERS[name]}"), name)
    raise AttributeError(name)
