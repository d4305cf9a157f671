"""A missing input topic: the worker creates it with its partition count and forwards every partition at once."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaClient

from tests.harness import wait_for

pytestmark = pytest.mark.integration

CONTACTS = 60


async def partition_count(bootstrap: str, topic: str) -> int | None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(topic)
        return len(partitions) if partitions else None
    finally:
        await client.close()


def test_worker_creates_a_missing_input_topic_and_processes_all_its_partitions(stack):
    stack.partitions = 6  # not the broker's default, so the worker must be the one creating it
    assert asyncio.run(partition_count(stack.bootstrap, stack.input_topic)) is None
    worker = stack.worker().start()
    assert asyncio.run(partition_count(stack.bootstrap, stack.input_topic)) == 6

    now_ms = int(time.time() * 1000)
    stack.produce((f"c-{i}".encode(), orjson.dumps({
        "event_id": f"e-{i}", "type": "contact.queued", "occurred_at": now_ms - CONTACTS + i,
        "contact_id": f"c-{i}", "queue": "support", "channel": "voice"})) for i in range(CONTACTS))

    def processed() -> float:
        return sum(value for (name, _), value in worker.metrics().items() if name == "callpulse_events_total")
    # Well under the 40 s a forwarder once spent per partition it could not seek yet.
    wait_for(lambda: processed() == CONTACTS, 30, interval=0.2,
             message=f"all {CONTACTS} events processed (keys spread over every partition)")
