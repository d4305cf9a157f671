"""The sweep: each owned partition gets one tick per SWEEP_INTERVAL_SECONDS, one slot of partitions at a time."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.config import load_config
from streams.pipeline import SWEEP_SLOTS, TOMBSTONE_BUCKET_MS, PartitionClock, Pipeline, sweep_slot_partitions
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



def test_a_tombstone_is_ticked_once_its_whole_due_minute_has_passed(pipeline):
    """Tombstones are indexed by due minute: at most a minute late, in a list rather than one by one."""
    retention = pipeline.limits.dedupe_retention_ms
    done_at = 1_795_399_980_000  # a minute boundary: the tombstone is due at done_at + retention
    assert (done_at + retention) % TOMBSTONE_BUCKET_MS == 0
    tombstone = {"p": 0, "ev": [], "seen": {"e1": 1}, "fin": done_at + 1, "fo": 1, "sent": [], "st": None,
                 "last": done_at, "done": 1, "end": None, "arr": done_at - 30_000}
    in_flight = dict(tombstone, done=0, ev=[[done_at, "contact.queued", "sales", "voice", 0, "e2", 2]],
                     seen={"e2": 2}, fin=0, fo=-1)
    pipeline._index(0, "c-done", tombstone)
    pipeline._index(0, "c-live", in_flight)
    assert pipeline.tracked_contacts() == 2
    assert "c-done" not in pipeline.due[0]

    def sweep_partition_0(newest_event_ms: int) -> list[str]:
        pipeline.clocks[0] = PartitionClock(stream_time_ms=newest_event_ms, last_event_monotonic=float("inf"))
        pipeline.sweep_slot = -1  # slot 0 next
        producer = pipeline.app.producer
        before = len(producer.sent)
        asyncio.run(pipeline._sweep())
        return [contact for _, tick in producer.sent[before:] for contact in tick["c"]]

    skew = pipeline.limits.skew_ms
    assert sweep_partition_0(done_at + 1 + skew) == ["c-live"]  # its event is final at watermark done_at + 1
    # Due at done_at + retention, in the minute that ends a minute later: ticked only then.
    assert sweep_partition_0(done_at + retention + skew) == []
    assert sweep_partition_0(done_at + retention + TOMBSTONE_BUCKET_MS - 2 + skew) == []
    assert sweep_partition_0(done_at + retention + TOMBSTONE_BUCKET_MS - 1 + skew) == ["c-done"]
    assert pipeline.tracked_contacts() == 1  # the live one, being finalised
