"""The worker's outputs (facts, outcome records, dead letters, queue stats, ticks, platform adapters' events, queue-state writes) and a replayed input batch."""

from __future__ import annotations

import asyncio
import copy
import types

import orjson
import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from faust.types import TP
from faust.types.tuples import Message

from streams import pipeline as pipeline_module
from streams.config import load_config
from streams.input_batches import InputRecord, encode_batch
from streams.pipeline import OUTCOMES_TOPIC, PartitionClock, Pipeline
from streams.platforms import agents as platform_agents
from streams.platforms.feed import new_converter
from streams.settings import Settings


class RecordingProducer:
    """Stands in for Faust's producer: send() returns the delivery future, as Faust's does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, dict, int | None]] = []
        self.deliveries: list[asyncio.Future] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key, orjson.loads(value), partition))
        delivered = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivered)
        return delivered


@pytest.fixture
def pipeline(tmp_path):
    pipeline = Pipeline(Settings(data_dir=tmp_path, partitions=8), load_config(None))
    pipeline.app.producer = RecordingProducer()
    pipeline.crashes = []

    async def crash(app, reason):
        pipeline.crashes.append(reason)

    pipeline.app.crash = types.MethodType(crash, pipeline.app)
    return pipeline


def records(count: int) -> list[dict]:
    return [{"record": "left_queue", "contact_id": f"c-{i}", "queue": "sales", "channel": "voice",
             "outcome": "answered", "enqueued_at_ms": 1_000, "left_queue_at_ms": 2_000, "wait_ms": 1_000,
             "agent_id": "a-1", "t": 2_000} for i in range(count)]


def run_without_yielding(coroutine) -> None:
    """Run `coroutine` to its end in one step; fail if it gives the event loop a turn on the way."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    pytest.fail("yielded to the event loop")


async def test_a_ticks_records_go_out_without_giving_other_tasks_a_turn(pipeline):
    """Faust's Topic.send yields three times per message (App.maybe_start_producer's stampede guard)."""
    run_without_yielding(pipeline._send_records(records(50)))
    producer = pipeline.app.producer
    assert [(topic, key, partition) for topic, key, _value, partition in producer.sent] == [
        (OUTCOMES_TOPIC, f"c-{i}".encode(), None) for i in range(50)]  # keyed: the partitioner picks
    assert producer.sent[0][2]["wait_seconds"] == 1.0  # as the contract publishes it
    facts = [{"q": "sales", "c": "voice", "k": "g", "src": [0, 1, 2, i]} for i in range(5)]
    run_without_yielding(pipeline._send_facts(facts))
    assert len(producer.sent) == 51  # one facts message for the one partition


async def test_an_undelivered_output_stops_the_worker(pipeline):
    await pipeline._send_records(records(2))
    pipeline.app.producer.deliveries[0].set_result(None)
    pipeline.app.producer.deliveries[1].set_exception(RuntimeError("broker gone"))
    for _ in range(3):  # the done callback, then the crash task
        await asyncio.sleep(0)
    assert [str(reason) for reason in pipeline.crashes] == ["output not delivered: broker gone"]


async def test_a_derived_topic_that_cannot_be_created_stops_the_worker_before_it_is_ready(pipeline, monkeypatch):
    """The derived topics are created at the end of the first recovery, those the broker lacks only."""
    async def broker_topics(settings):
        return {"callpulse.contact-outcomes": 8}  # created beforehand: not created again

    monkeypatch.setattr(pipeline_module, "existing_topics", broker_topics)
    declared = []

    def declare(topic, problem=None):
        async def maybe_declare():
            declared.append(topic.get_topic_name())
            if problem is not None:
                raise problem
        topic.maybe_declare = maybe_declare

    declare(pipeline.outcomes_topic)
    declare(pipeline.queue_stats_topic)
    declare(pipeline.dead_letter_topic, TopicAuthorizationFailedError("not allowed"))
    await pipeline._rebuild_index()
    for _ in range(3):  # the crash task
        await asyncio.sleep(0)
    assert declared == ["callpulse.queue-stats", "callpulse.dead-letter"]
    assert not pipeline.ready
    assert [str(reason) for reason in pipeline.crashes] == [
        "cannot create the topic callpulse.dead-letter: [Error 29] TopicAuthorizationFailedError: not allowed"]


async def test_an_undelivered_queue_snapshot_is_only_logged(pipeline, caplog):
    await pipeline.produce("callpulse.queue-stats", b"voice:sales", b"{}", must_deliver=False)
    pipeline.app.producer.deliveries[0].set_exception(RuntimeError("broker gone"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert pipeline.crashes == []
    assert "could not be delivered: broker gone" in caplog.text


async def test_the_platform_adapters_outputs_go_the_same_way(pipeline):
    """Converted events to the input topic, rejected raw records to the dead-letter topic."""
    def message(offset: int, value: bytes) -> types.SimpleNamespace:
        raw = Message("callpulse.raw.twilio", 0, offset, 0.0, 0, None, b"k", value, None, tp=TP("callpulse.raw.twilio", 0))
        return types.SimpleNamespace(message=raw)

    worker_sid = "WK" + "a" * 32
    activity = {"EventType": "worker.activity.update", "WorkerSid": worker_sid, "WorkerActivityName": "Available",
                "Timestamp": "1795334400"}

    class Stream:
        async def events(self):
            yield message(6, orjson.dumps(activity))
            yield message(7, b"not json")

    await platform_agents._raw_agent(pipeline, new_converter("twilio", None))(Stream())
    [(topic, key, event, partition), (dead_topic, dead_key, value, dead_partition)] = pipeline.app.producer.sent
    assert (topic, partition, event["type"], event["state"]) == (
        pipeline.settings.input_topic, None, "agent.state_changed", "available")
    assert key == event["agent_id"].encode()
    assert (dead_topic, dead_key, dead_partition) == ("callpulse.dead-letter", b"k", None)
    assert (value["source"]["offset"], value["reason"]) == (7, "not_json")
    pipeline.app.producer.deliveries[1].set_exception(RuntimeError("broker gone"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert [str(reason) for reason in pipeline.crashes] == ["output not delivered: broker gone"]


async def test_an_undelivered_tick_stops_the_worker(pipeline):
    """Its contacts are marked as being finalised until the tick is processed: a restart indexes them again."""
    pipeline.active_partitions = lambda topic: {0}
    pipeline.ready = True
    pipeline.clocks[0] = PartitionClock(stream_time_ms=100_000)
    pipeline.due[0]["c1"] = 5
    pipeline.heaps[0] = [(5, "c1")]
    await pipeline._sweep()  # slot 0: partition 0
    [(topic, key, tick, partition)] = pipeline.app.producer.sent
    assert (topic, key, partition, tick["c"]) == (pipeline.tick_topic.get_topic_name(), None, 0, ["c1"])
    assert pipeline.due[0]["c1"] == -1
    pipeline.app.producer.deliveries[0].set_exception(RuntimeError("broker gone"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert [str(reason) for reason in pipeline.crashes] == ["output not delivered: broker gone"]


class MemoryTable:
    """Stands in for BatchedTable: get_many and put_many over a dict."""

    def __init__(self) -> None:
        self.values: dict[str, dict] = {}

    def get_many(self, partition, keys):
        return {key: copy.deepcopy(self.values.get(key)) for key in keys}

    async def put_many(self, partition, changes):
        self.values.update(copy.deepcopy(dict(changes)))


async def test_a_replayed_batch_moves_the_partitions_event_time_on_as_the_first_run_did(pipeline):
    """After a restart the replayed events are the newest the first run saw: without them the idle
    watermark stayed below them, and their contacts never got their handle time (README: restarts)."""
    pipeline.contact_table, pipeline.agent_table = MemoryTable(), MemoryTable()
    pipeline._committed_offsets = lambda partition: (0, 0)
    events = [{"event_id": f"e{i}", "type": kind, "occurred_at": 1_795_400_000_000 + i * 1000, "contact_id": "c1",
               **extra} for i, (kind, extra) in enumerate([
                   ("contact.queued", {"queue": "sales", "channel": "voice"}),
                   ("contact.answered", {"agent_id": "a1"}),
                   ("contact.ended", {"disconnected_by": "customer"})])]
    frame = encode_batch(0, [InputRecord(i, None, b"c1", orjson.dumps(e)) for i, e in enumerate(events)], 0)
    message = types.SimpleNamespace(partition=0, offset=3, topic="batches", value=frame)
    first = PartitionClock()
    await pipeline._on_batch(message, first)
    assert first.stream_time_ms == 1_795_400_002_000
    restarted = PartitionClock()  # the same batch again, its contact already holding it
    await pipeline._on_batch(message, restarted)
    assert restarted.stream_time_ms == first.stream_time_ms


def facts_message(offset: int, queue: str = "sales") -> types.SimpleNamespace:
    """A facts message of partition 0 holding one queue entry of `queue` (voice)."""
    value = orjson.dumps({f"voice:{queue}": [
        {"k": "enq", "t": 1_795_400_000_000 + offset, "q": queue, "c": "voice", "src": [0, 0, offset, 0]}]})
    raw = Message("cp-queue-facts", 0, offset, 0.0, 0, None, None, value, None, tp=TP("cp-queue-facts", 0))
    return types.SimpleNamespace(message=raw)


class ListStream:
    def __init__(self, events) -> None:
        self._events = events

    async def events(self):
        for event in self._events:
            yield event


async def test_the_queue_agent_writes_each_changed_queue_once_per_flush_then_lets_its_facts_commit(pipeline):
    pipeline.queue_table = table = MemoryTable()
    pipeline.ready = True
    pipeline.app.rebalancing = False
    await pipeline._queue_agent(ListStream([facts_message(offset) for offset in range(5)]))
    assert pipeline.queue_exports["voice:sales"]["n"]["queued"] == 5  # what /metrics reads: current at once
    assert table.values == {}  # nothing written per message
    assert pipeline.offsets.durable_through == {}  # so nothing of the facts topic is committable
    await pipeline._flush_queue_states()
    assert table.values["voice:sales"]["n"]["queued"] == 5
    assert pipeline.offsets.durable_through == {TP("cp-queue-facts", 0): 4}
    await pipeline._queue_agent(ListStream([facts_message(5, queue="support")]))
    table.values.clear()
    await pipeline._flush_queue_states()
    assert list(table.values) == ["voice:support"]  # only what changed since the last flush


async def test_a_revocation_drops_the_queue_changes_not_written(pipeline):
    """Their facts were never committable, so they are read again and applied to the restored states."""
    pipeline.queue_table = table = MemoryTable()
    pipeline.ready = True
    pipeline.app.rebalancing = False
    await pipeline._queue_agent(ListStream([facts_message(0)]))
    await pipeline._on_revoked(None, set())
    pipeline.ready = True  # as after the next recovery
    await pipeline._flush_queue_states()
    assert table.values == {}
    assert pipeline.offsets.durable_through == {}


async def test_a_flush_overtaken_by_a_revocation_declares_nothing_durable(pipeline):
    class RevokedWhileWriting(MemoryTable):
        async def put_many(self, partition, changes):
            await super().put_many(partition, changes)
            await pipeline._on_revoked(None, set())

    pipeline.queue_table = RevokedWhileWriting()
    pipeline.ready = True
    await pipeline._queue_agent(ListStream([facts_message(0)]))
    await pipeline._flush_queue_states()
    assert pipeline.offsets.durable_through == {}
