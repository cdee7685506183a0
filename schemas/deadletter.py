"""Dead-letter records: the original bytes of a rejected message with where it came from and why."""
from __future__ import annotations

import base64

from schemas.records import DeadLetter


def _text_or_base64(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                reason: str, field: str | None = None, kafka_ts: int | None = None) -> DeadLetter:
    """The dead-letter record for one rejected message (value base64-encoded when it is not UTF-8)."""
    text, encoding = _text_or_base64(value or b"")
    key_text, key_encoding = _text_or_base64(key) if key is not None else (None, None)
    return DeadLetter(topic=topic, partition=partition, offset=offset, reason=reason, field=field,
                      value=text, value_encoding=encoding, key=key_text, key_encoding=key_encoding,
                      kafka_ts=kafka_ts)


def original_value(record: DeadLetter) -> bytes:
    """The original message bytes of a dead letter, for replay."""
    if record.value_encoding == "base64":
        return base64.b64decode(record.value)
    return record.value.encode("utf-8")
