"""Kafka clients of the benchmarks: topic creation, batched producing, the plain-consumer ceiling."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.progress import Progress
from benchmarks.workload import Message

# Sends in flight before waiting for their acknowledgements.
SEND_CHUNK_MESSAGES = 5000


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


def batching_producer(bootstrap: str, linger_ms: int = 50) -> AIOKafkaProducer:
    """A producer as an external service would configure one for bulk traffic."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, max_batch_size=256 * 1024)


async def produce(bootstrap: str, topic: str, messages: Sequence[Message], progress: Progress) -> float:
    """Send every message, SEND_CHUNK_MESSAGES in flight at a time; return the seconds it took."""
    producer = batching_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for sent, (key, value) in enumerate(messages, 1):
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= SEND_CHUNK_MESSAGES:
                await asyncio.gather(*pending)
                pending.clear()
                progress.say(f"produced {sent:,}/{len(messages):,}")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def consume_and_parse(bootstrap: str, topic: str, partitions: int, expected: int,
                            timeout_seconds: float, progress: Progress) -> dict:
    """Read the topic from the start with getmany batches, parse every value, count types.

    The ceiling for any Python consumer of this backlog on this machine and broker.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    assigned = [TopicPartition(topic, partition) for partition in range(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)
    types: Counter = Counter()
    seen = 0
    loads = orjson.loads
    started = time.perf_counter()
    try:
        while seen < expected and time.perf_counter() - started < timeout_seconds:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    types[loads(record.value)["type"]] += 1
                seen += len(records)
            progress.say(f"plain consumer: {seen:,}/{expected:,}")
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"events": seen, "seconds": elapsed, "timed_out": seen < expected, "types": dict(types)}
