"""Missing topics: the worker creates the input topic and its derived topics with its partition count.

It forwards every partition of a topic it created at once.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from streams.kafka import existing_partitions
from streams.settings import Settings
from tests.harness import wait_for

pytestmark = pytest.mark.integration

CONTACTS = 60


DERIVED_TOPICS = ("callpulse.contact-outcomes", "callpulse.queue-stats", "callpulse.dead-letter")


def partition_count(stack, topic: str | None = None) -> int | None:
    return asyncio.run(existing_partitions(Settings(broker=f"kafka://{stack.bootstrap}"), topic or stack.input_topic))


def test_worker_creates_its_derived_topics_before_it_reports_ready(stack):
    """Nothing has been sent to them yet, so no broker could have created them on first use."""
    stack.partitions = 6  # not the broker's default
    assert {topic: partition_count(stack, topic) for topic in DERIVED_TOPICS} == dict.fromkeys(DERIVED_TOPICS)
    stack.worker().start()  # returns once /readyz answers 200
    assert {topic: partition_count(stack, topic) for topic in DERIVED_TOPICS} == dict.fromkeys(DERIVED_TOPICS, 6)


def test_worker_creates_a_missing_input_topic_and_processes_all_its_partitions(stack):
    stack.partitions = 6  # not the broker's default, so the worker must be the one creating it
    assert partition_count(stack) is None
    worker = stack.worker().start()
    assert partition_count(stack) == 6

    now_ms = int(time.time() * 1000)
    stack.produce((f"c-{i}".encode(), orjson.dumps({
        "event_id": f"e-{i}", "type": "contact.queued", "occurred_at": now_ms - CONTACTS + i,
        "contact_id": f"c-{i}", "queue": "support", "channel": "voice"})) for i in range(CONTACTS))

    def processed() -> float:
        return sum(value for (name, _), value in worker.metrics().items() if name == "callpulse_events_total")
    # Well under the 40 s a forwarder once spent per partition it could not seek yet.
    wait_for(lambda: processed() == CONTACTS, 30, interval=0.2,
             message=f"all {CONTACTS} events processed (keys spread over every partition)")
