"""What the SMS adapter and the task feed share as Kafka consumers: reading again from the committed offsets."""
from __future__ import annotations

from aiokafka import AIOKafkaConsumer


async def rewind_to_committed(consumer: AIOKafkaConsumer) -> None:
    """Seek every assigned partition back to its committed offset (its start when nothing is committed), so what
    was read but not finished before an outage is read again."""
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)
