"""Producers track every topic they send to (streams/kafka.py), including the ones Faust creates."""

from __future__ import annotations

import asyncio

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.protocol.metadata import MetadataResponse_v0

from streams.kafka import track_sent_topics, track_sent_topics_in_faust


def knows_topic_from_start(producer: AIOKafkaProducer, topic: str) -> None:
    """The producer's metadata holds `topic`, as after its all-topics metadata request at start."""
    producer.client.cluster.update_metadata(MetadataResponse_v0(
        brokers=[(1, "127.0.0.1", 9092)], topics=[(0, topic, [(0, 0, 1, [1], [1])])]))


async def tracked_after_send_path(producer: AIOKafkaProducer, topic: str) -> set[str]:
    knows_topic_from_start(producer, topic)
    assert await producer.client._wait_on_metadata(topic) == {0}  # what send() awaits first
    return set(producer.client._topics)


def test_a_tracked_producer_tracks_a_topic_it_already_knew():
    async def run():
        return await tracked_after_send_path(track_sent_topics(AIOKafkaProducer()), "known")
    assert asyncio.run(run()) == {"known"}


def test_aiokafka_alone_leaves_a_known_topic_untracked():
    """The bug behind track_sent_topics (tests/integration/test_producer_metadata.py shows its effect)."""
    async def run():
        return await tracked_after_send_path(AIOKafkaProducer(), "known")
    assert asyncio.run(run()) == set()


def test_every_producer_faust_creates_tracks_its_topics():
    async def run():
        app = faust.App("probe-tracked-topics", broker="kafka://127.0.0.1:9092")
        track_sent_topics_in_faust(app)
        return await tracked_after_send_path(app.producer._new_producer(), "changelog")
    assert asyncio.run(run()) == {"changelog"}
