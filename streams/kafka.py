"""Kafka helpers shared by the worker and the command line: partition discovery, the partition of
a key, and a fix that keeps aiokafka producers tracking every topic they send to.

aiokafka 0.14 asks the broker for the metadata of the topics a client tracks, and
replaces what it knew with the answer. A producer starts knowing every topic (it
tracks none, which means all), and `send()` adds a topic to the tracked ones only
when the topic is not in the metadata yet. So the first send to a topic created
after start (callpulse's dead-letter topic, a topic the broker creates on first
use) narrows the metadata to that topic, and forgets the topics sent to so far.
A record batch still waiting for one of them then has no known leader: the
sender asks for metadata in a tight loop that never includes the topic, until the
batch expires with NotLeaderForPartitionError after request_timeout_ms: 40 s for
aiokafka's default, 20 minutes for Faust's producer. Where the sending code waits
for that delivery before it sends again (the worker's forwarder does), nothing
re-adds the topic meanwhile: the worker stopped, spinning on metadata requests. `track_sent_topics` makes every send track
its topic; a producer that only ever sends to one topic (the simulator's) is not
affected. Pinned, with the bug itself, by tests/integration/test_producer_metadata.py.
"""

from __future__ import annotations

from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from streams.settings import Settings


async def existing_partitions(settings: Settings, topic: str) -> int | None:
    """The partition count of `topic`, or None when it does not exist yet (never creates it)."""
    return (await existing_topics(settings)).get(topic) or None


async def existing_topics(settings: Settings) -> dict[str, int]:
    """The partition count of every topic the broker has (asking never creates one)."""
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap_servers, **settings.aiokafka_security())
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        return {topic: len(metadata.partitions_for_topic(topic) or ()) for topic in metadata.topics()}
    finally:
        await client.close()


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's and aiokafka's: murmur2) picks for `key`."""
    return DefaultPartitioner()(key, list(range(partitions)), None)


def track_sent_topics(producer: AIOKafkaProducer) -> AIOKafkaProducer:
    """Make `producer` track the metadata of every topic it sends to (see the module)."""
    client = producer.client
    wait_on_metadata = client._wait_on_metadata

    async def track_and_wait_on_metadata(topic: str):
        if topic not in client._topics:
            client.add_topic(topic)  # the next metadata update includes it
        return await wait_on_metadata(topic)

    client._wait_on_metadata = track_and_wait_on_metadata
    return producer


def track_sent_topics_in_faust(app) -> None:
    """Apply `track_sent_topics` to every aiokafka producer Faust's producer creates for the faust.App `app`."""
    faust_producer = app.producer
    new_producer = faust_producer._new_producer

    def new_tracking_producer(*args, **kwargs):
        return track_sent_topics(new_producer(*args, **kwargs))

    faust_producer._new_producer = new_tracking_producer
