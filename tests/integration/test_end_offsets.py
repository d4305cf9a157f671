"""Exact end offsets on the embedded broker: multi-record batches, raw ListOffsets vs the checked values,
directly and through the patched Faust consumer thread."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from streams import end_offsets
from streams.settings import Settings

pytestmark = pytest.mark.integration

TOPIC = "end-offsets"
BATCHES = 3
BATCH_RECORDS = 5  # partition 0: three batches of five records; partition 1: one record; 2: empty


async def produce_batches(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    # A long linger: each batch's records go out together, as one record batch.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        for batch in range(BATCHES):
            futures = [await producer.send(TOPIC, value=b"%d-%d" % (batch, i), partition=0)
                       for i in range(BATCH_RECORDS)]
            await producer.flush()
            offsets = [(await future).offset for future in futures]
            assert offsets == list(range(batch * BATCH_RECORDS, (batch + 1) * BATCH_RECORDS))
        await (await producer.send(TOPIC, value=b"single", partition=1))
    finally:
        await producer.stop()


async def test_checked_end_offsets_are_exact_with_multi_record_batches(broker):
    await produce_batches(broker)
    partitions = [TopicPartition(TOPIC, p) for p in range(3)]
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        raw = await consumer.end_offsets(partitions)
        # tansu 0.6 says 11 here (the last batch's base offset + 1); informative only, so
        # this test keeps passing on a broker without the bug.
        print(f"raw end offsets: {[raw[tp] for tp in partitions]}")
        exact = await end_offsets.exact_end_offsets(raw, broker)
        assert [exact[tp] for tp in partitions] == [BATCHES * BATCH_RECORDS, 1, 0]

        # The same through Faust: the installed _highwaters of its consumer thread, keyed by Faust TPs.
        faust_highwaters = AIOKafkaConsumerThread._highwaters
        end_offsets.install(Settings(broker=f"kafka://{broker}"))
        assert AIOKafkaConsumerThread._highwaters is not faust_highwaters
        thread = SimpleNamespace(consumer=SimpleNamespace(in_transaction=False),
                                 _ensure_consumer=lambda: consumer)
        faust_tps = [TP(tp.topic, tp.partition) for tp in partitions]
        highwaters = await AIOKafkaConsumerThread._highwaters(thread, faust_tps)
        assert highwaters == dict(zip(faust_tps, [BATCHES * BATCH_RECORDS, 1, 0]))

        # Transactional mode (last stable offsets) keeps Faust's own path.
        thread.consumer.in_transaction = True
        consumer.assign(partitions)  # as Faust's consumer has them
        assert await AIOKafkaConsumerThread._highwaters(thread, faust_tps) == \
            await faust_highwaters(thread, faust_tps)
    finally:
        await consumer.stop()


@pytest.fixture(autouse=True)
def _restore_faust(monkeypatch):
    """install() patches Faust's class for the whole process: undo it after the test."""
    monkeypatch.setattr(AIOKafkaConsumerThread, "_highwaters", AIOKafkaConsumerThread._highwaters)
