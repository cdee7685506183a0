"""`yujing test-bank`: a bank's side of stop-payments for the demo and tests; every request answered on
`interception.replies`.

A real bank holds what is still in the payee's account. This one knows no balances, so it answers by a stated
rule (`answer`): `refused` for a request a bank cannot act on (no request id, legal basis or requesting unit),
`held` (the whole amount) otherwise, dated `answer_after_ms` after the request; a request asked again is answered
again the same way, which a consumer of the replies takes as the same answer.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.config import Settings
from schemas.decode import InvalidRecord, decode_typed
from schemas.records import BankReply, PaymentInterception, encode
from schemas.topics import REPLY_TOPIC
from streams.kafka_security import client_options

log = logging.getLogger(__name__)


def answer(request: PaymentInterception, bank: str, answer_after_ms: int) -> BankReply | None:
    """The test bank's answer to one request (None: a request without an id names nothing to answer)."""
    if not request.request_id:
        return None
    missing = [name for name in ("legal_basis", "requesting_unit") if not getattr(request, name)]
    ts = request.ts + answer_after_ms
    if missing:
        return BankReply(request_id=request.request_id, transfer_id=request.transfer_id, bank=bank, reply="refused",
                         ts=ts, note=f"missing {', '.join(missing)}")
    return BankReply(request_id=request.request_id, transfer_id=request.transfer_id, bank=bank, reply="held", ts=ts,
                     held_fen=request.amount_fen)


async def run(settings: Settings, bank: str = "TEST-BANK", answer_after_ms: int = 60_000,
              stop: asyncio.Event | None = None) -> None:
    """Answer stop-payment requests until `stop` is set (or forever); offsets committed once the answers are in."""
    consumer = AIOKafkaConsumer(settings.topic("interception.payment"), **client_options(settings),
                                group_id=f"{settings.app_id}-bank", enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for messages in batches.values():
                for msg in messages:
                    try:
                        request = decode_typed(PaymentInterception, msg.value)
                    except InvalidRecord as exc:
                        log.warning("not a stop-payment request at offset %d: %s", msg.offset, exc)
                        continue
                    reply = answer(request, request.payee_bank or bank, answer_after_ms)
                    if reply is not None:
                        await producer.send_and_wait(settings.topic(REPLY_TOPIC), encode(reply),
                                                     key=reply.request_id.encode())
                        log.info("request %s (transfer %s): %s", reply.request_id, reply.transfer_id, reply.reply)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
