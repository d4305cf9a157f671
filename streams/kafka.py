"""Kafka helpers shared by the worker and the command line: partition discovery."""

from __future__ import annotations

from aiokafka import AIOKafkaClient

from streams.settings import Settings


async def existing_partitions(settings: Settings, topic: str) -> int | None:
    """The partition count of `topic`, or None when it does not exist yet (never creates it)."""
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap_servers, **settings.aiokafka_security())
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(topic)
        return len(partitions) if partitions else None
    finally:
        await client.close()
