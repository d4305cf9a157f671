"""Where a queue lives: the facts partition of its raw key, for the facts messages and for /queues/{queue}."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.config import load_config
from streams.kafka import key_partition
from streams.lifecycle import facts as f
from streams.pipeline import Pipeline
from streams.settings import Settings

KEYS = [f.queue_key(queue, channel) for queue in ("sales", "support", "billing", "tech", "vip")
        for channel in ("voice", "chat")]


@pytest.fixture
def pipeline(tmp_path):
    return Pipeline(Settings(data_dir=tmp_path, partitions=8), load_config(None))


def test_key_partition_is_kafkas_default_partitioner():
    # aiokafka's murmur2 (a port of the Java client's), positive, modulo the partition count.
    assert [key_partition(key.encode(), 8) for key in ("voice:sales", "chat:sales", "voice:tech")] == [6, 4, 2]
    assert all(0 <= key_partition(key.encode(), 3) < 3 for key in KEYS)


def test_the_owner_of_a_queue_is_the_worker_holding_its_facts_partition(pipeline):
    topic = pipeline.queues.changelog_topic.get_topic_name()
    pipeline.app.assignor.changelog_distribution = {
        "http://a:6066": {topic: [0, 1, 2, 3]},
        "http://b:6066": {topic: [4, 5, 6, 7]},
    }
    for key in KEYS:
        expected = "http://a:6066" if key_partition(key.encode(), 8) < 4 else "http://b:6066"
        assert pipeline.queue_owner_url(key) == expected, key
    # Faust's router.key_store hashes the key as the table's changelog topic encodes it (JSON,
    # quoted), which gives another partition for most of these queues.
    assert pipeline.queues.changelog_topic.prepare_key("voice:sales", None)[0] == b'"voice:sales"'
    assert sum(key_partition(orjson.dumps(key), 8) != key_partition(key.encode(), 8) for key in KEYS) >= 5


def test_no_owner_before_an_assignment(pipeline):
    assert pipeline.queue_owner_url("voice:sales") is None


def test_facts_go_as_one_message_per_partition_with_each_queue_in_order(pipeline):
    sent: list[tuple] = []

    async def produce(topic, key, value, partition=None):
        assert topic == pipeline.facts_topic.get_topic_name()
        sent.append((key, partition, f.read_facts_message(key, value)))

    pipeline.produce = produce
    facts = [{"q": queue, "c": "voice", "k": "g", "src": [0, 1, 2, i]}
             for i, queue in enumerate(["sales", "billing", "sales", "tech", "billing", "sales"])]
    asyncio.run(pipeline._send_facts(facts))

    assert all(key is None for key, _partition, _by_queue in sent)
    assert len({partition for _key, partition, _by_queue in sent}) == len(sent), "one message per partition"
    received = {key: items for _key, partition, by_queue in sent for key, items in by_queue.items()
                if key_partition(key.encode(), 8) == partition}
    assert received == {
        "voice:sales": [facts[0], facts[2], facts[5]],
        "voice:billing": [facts[1], facts[4]],
        "voice:tech": [facts[3]],
    }


def test_a_facts_message_reads_back_and_the_one_queue_layout_still_reads():
    by_queue = {"voice:sales": [{"k": "g", "src": [0, 1, 2, 3]}], "chat:vip": [{"k": "enq", "src": [1, 0, 4, 0]}]}
    assert f.read_facts_message(None, f.facts_message(by_queue)) == by_queue
    old = orjson.dumps([{"k": "g", "src": [0, 1, 2, 3]}])
    assert f.read_facts_message(b"voice:sales", old) == {"voice:sales": [{"k": "g", "src": [0, 1, 2, 3]}]}
    with pytest.raises(ValueError):
        f.read_facts_message(None, old)
    with pytest.raises(ValueError):
        f.read_facts_message(None, b'"text"')
