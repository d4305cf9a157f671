"""BatchedTable on a real Faust RocksDB store and real aiokafka record batches (the broker's side recorded)."""

import asyncio
from types import SimpleNamespace

import aiokafka
import faust
import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatch
from faust.types import TP
from faust.types.tuples import ConsumerMessage

import streams.pipeline  # noqa: F401  (registers the "callpulse-table-json" codec)
from streams.table_batches import BatchedTable, encode_key, encode_value


class RecordingProducer:
    """aiokafka's own batches (an unstarted producer builds them); send_batch records what the broker would get."""

    def __init__(self, max_batch_size: int = 16384) -> None:
        self.real = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=max_batch_size)
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes | None]], asyncio.Future]] = []

    def create_batch(self):
        return self.real.create_batch()

    async def send_batch(self, batch, topic, *, partition):
        built = DefaultRecordBatch(bytes(batch._builder.build()))
        records = [(record.key, record.value) for record in built]
        delivered = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, records, delivered))
        return delivered


@pytest.fixture
def app(tmp_path):
    return faust.App("batches-test", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(tmp_path),
                     autodiscover=False)


@pytest.fixture
def table(app):
    table = app.Table("contacts", default=None, partitions=4)
    table.key_serializer = table.value_serializer = "callpulse-table-json"
    yield table
    for db in list(table.data._dbs.values()):
        db.close()


@pytest.fixture
async def producer(app):
    producer = RecordingProducer()
    app.producer._producer = producer
    return producer


def test_keys_and_values_are_the_bytes_faust_writes_for_the_table(app, table):
    value = {"q": "billing", "n": 3, "out": None, "at": [1, 2]}
    assert encode_key("c-1") == app.serializers.dumps_key(None, "c-1", serializer=table.key_serializer)
    assert encode_value(value) == app.serializers.dumps_value(None, value, serializer=table.value_serializer)


async def test_put_many_writes_rocksdb_and_one_changelog_batch(app, table, producer):
    batched = BatchedTable(app, table)
    await batched.put_many(2, {"c-1": {"n": 1}, "c-2": {"n": 2}})
    assert batched.get_many(2, ["c-1", "c-2", "c-3"]) == {"c-1": {"n": 1}, "c-2": {"n": 2}, "c-3": None}
    [(topic, partition, records, _)] = producer.sent
    assert (topic, partition) == (table.changelog_topic.get_topic_name(), 2)
    assert records == [(b'"c-1"', b'{"n":1}'), (b'"c-2"', b'{"n":2}')]


async def test_none_deletes_the_key_and_sends_a_tombstone(app, table, producer):
    batched = BatchedTable(app, table)
    await batched.put_many(0, {"c-1": {"n": 1}})
    await batched.put_many(0, {"c-1": None})
    assert batched.get_many(0, ["c-1"]) == {"c-1": None}
    assert producer.sent[-1][2] == [(b'"c-1"', None)]


async def test_partitions_are_separate_databases(app, table, producer):
    batched = BatchedTable(app, table)
    await batched.put_many(1, {"c-1": {"n": 1}})
    assert batched.get_many(3, ["c-1"]) == {"c-1": None}


async def test_state_recovered_by_faust_reads_here(app, table, producer):
    """After a restart Faust's recovery fills RocksDB from the changelog; the agents read it here."""
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    message = ConsumerMessage(tp.topic, 1, 7, 0.0, 0, None, encode_key("c-1"), encode_value({"n": 1}), None, tp=tp)
    table.data.apply_changelog_batch([SimpleNamespace(message=message)], to_key=None, to_value=None)
    assert BatchedTable(app, table).get_many(1, ["c-1"]) == {"c-1": {"n": 1}}
    assert table.data.persisted_offset(tp) == 7


async def test_delivery_stores_the_last_changelog_offset_like_faust(app, table, producer):
    batched = BatchedTable(app, table)
    await batched.put_many(1, {"c-1": {"n": 1}, "c-2": {"n": 2}, "c-3": {"n": 3}})
    delivered = producer.sent[0][3]
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    assert table.data.persisted_offset(tp) is None
    delivered.set_result(aiokafka.structs.RecordMetadata(tp.topic, 1, tp, 40, -1, 0, 0))
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert table.data.persisted_offset(tp) == 42


async def test_a_failed_delivery_is_reported_and_stores_no_offset(app, table, producer):
    problems = []
    batched = BatchedTable(app, table, on_unsent=problems.append)
    await batched.put_many(1, {"c-1": {"n": 1}})
    producer.sent[0][3].set_exception(aiokafka.errors.KafkaTimeoutError())
    await asyncio.sleep(0)
    assert [type(problem) for problem in problems] == [aiokafka.errors.KafkaTimeoutError]
    assert table.data.persisted_offset(TP(table.changelog_topic.get_topic_name(), 1)) is None


async def test_more_than_one_batch_of_records_goes_out_in_write_order(app, table, producer):
    producer.real = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
    batched = BatchedTable(app, table)
    changes = {f"c-{i}": {"pad": "x" * 200, "i": i} for i in range(20)}
    await batched.put_many(0, changes)
    assert len(producer.sent) > 1
    sent = [key for _, _, records, _ in producer.sent for key, _ in records]
    assert sent == [encode_key(key) for key in changes]
    assert [orjson.loads(value)["i"] for _, _, records, _ in producer.sent for _, value in records] == list(range(20))
