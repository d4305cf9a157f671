"""The sweep: each owned partition gets one tick per SWEEP_INTERVAL_SECONDS, one slot of partitions at a time."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.config import load_config
from streams.pipeline import SWEEP_SLOTS, PartitionClock, Pipeline, sweep_slot_partitions
from streams.settings import Settings


class RecordingProducer:
    """Stands in for Faust's producer: records what the sweep sends (through Pipeline.produce)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, dict]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        assert topic.endswith("-ticks") and key is None
        self.sent.append((partition, orjson.loads(value)))
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


@pytest.fixture
def pipeline(tmp_path):
    pipeline = Pipeline(Settings(data_dir=tmp_path, partitions=12), load_config(None))
    pipeline.app.producer = RecordingProducer()
    pipeline.active_partitions = lambda topic: set(range(12))
    pipeline.ready = True
    return pipeline


def test_every_partition_is_in_exactly_one_slot_and_the_slots_are_even():
    owned = set(range(12))
    slots = [sweep_slot_partitions(owned, slot) for slot in range(SWEEP_SLOTS)]
    assert sorted(p for partitions in slots for p in partitions) == list(range(12))
    assert {len(partitions) for partitions in slots} == {1, 2}  # 12 partitions over 8 slots
    assert sweep_slot_partitions({3, 11, 19}, 3) == [3, 11, 19]
    assert sweep_slot_partitions({3, 11, 19}, 4) == []


def test_one_round_of_sweeps_ticks_every_partition_once_with_its_due_contacts(pipeline):
    for partition in range(12):
        pipeline.clocks[partition] = PartitionClock(stream_time_ms=100_000 + partition)
        pipeline.due[partition][f"c{partition}"] = 5  # due long before the watermark
        pipeline.heaps[partition] = [(5, f"c{partition}")]
    producer = pipeline.app.producer
    per_sweep: list[list[int]] = []
    for _ in range(SWEEP_SLOTS):
        before = len(producer.sent)
        asyncio.run(pipeline._sweep())
        per_sweep.append([partition for partition, _ in producer.sent[before:]])
    # The first sweep is slot 0; each sweep ticks only its slot's partitions.
    assert per_sweep == [sweep_slot_partitions(set(range(12)), slot) for slot in range(SWEEP_SLOTS)]
    for partition, tick in producer.sent:
        assert tick["c"] == [f"c{partition}"]
        assert tick["w"] == 100_000 + partition - pipeline.limits.skew_ms
    # The next round starts again at slot 0, with nothing due any more.
    asyncio.run(pipeline._sweep())
    assert len(producer.sent) == 12

