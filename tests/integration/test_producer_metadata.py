"""aiokafka producers forget topics they send to (streams/kafka.py): the bug, and the fix, on the embedded broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import NotLeaderForPartitionError

from streams.kafka import track_sent_topics

pytestmark = pytest.mark.integration

KNOWN_AT_START = "known-at-start"
CREATED_LATER = "created-later"


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()


async def deliver_across_a_new_topic(bootstrap: str, fix: bool):
    """Send to a topic the producer knew at start, and, while that record lingers, for the first
    time to a topic created after start; return the first record's delivery (or its error)."""
    await create_topic(bootstrap, KNOWN_AT_START)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1000, request_timeout_ms=3000)
    await producer.start()
    if fix:
        track_sent_topics(producer)
    try:
        waiting = await producer.send(KNOWN_AT_START, b"lingers for a second")
        await create_topic(bootstrap, CREATED_LATER)
        await producer.send(CREATED_LATER, b"the first record to a topic created after start")
        assert not waiting.done()  # still lingering when the metadata changed
        try:
            return await waiting
        except NotLeaderForPartitionError as problem:
            return problem
    finally:
        await producer.stop()


def test_with_track_sent_topics_the_lingering_record_is_delivered(broker):
    delivered = asyncio.run(deliver_across_a_new_topic(broker, fix=True))
    assert not isinstance(delivered, Exception), delivered
    assert delivered.topic == KNOWN_AT_START and delivered.offset == 0


def test_aiokafka_alone_loses_the_topic_and_the_record_fails(broker):
    """The bug itself: this fails once aiokafka tracks sent topics (then track_sent_topics can go)."""
    delivered = asyncio.run(deliver_across_a_new_topic(broker, fix=False))
    assert isinstance(delivered, NotLeaderForPartitionError)
