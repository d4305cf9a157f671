"""A Faust table read and written a whole input batch at a time: one RocksDB multi-get, one write batch, changelog records in bulk.

Faust writes a table key at a time. Each write encodes the key and value
through its serializer registry, puts them into RocksDB, and queues a
changelog message in its producer buffer. A background task then hands the
messages to aiokafka one at a time and records each one's offset in RocksDB.
The lifecycle agent writes about 1,200 contacts per input batch, and that path
was most of its time. Over a 300,000-event backlog the buffer fell behind by
more than 100,000 messages, and the worker stopped for up to 35 s while it
drained (README: performance).

`BatchedTable` writes the same bytes to the same places:

- the table's RocksDB database for the partition, in one `WriteBatch`, as
  Faust's own changelog recovery does;
- the table's changelog topic and partition, as aiokafka record batches.

Recovery, standby replicas and rebalancing are Faust's, unchanged. The offset
of the last changelog record goes to RocksDB when the broker confirms it, as
Faust does for each message.

**At-least-once:** before it commits input offsets, Faust's consumer flushes
the aiokafka producer, and that waits for these record batches too. No input
offset is committed before the changelog holds its state.

**One writer per table:** records for the same key must reach the changelog in
the order they were written. So every write of a table must go through this
class. Faust's own `table[key] = value` queues messages that would be sent
later, and could reach the changelog after a newer write made here.

It uses Faust's RocksDB store (`_db_for_partition`, `_dbs`, `offset_key`) and
producer (`_ensure_producer`). This is private API, pinned by
tests/unit/test_table_batches.py; check it when upgrading Faust.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
import orjson
import rocksdict
from faust.types import TP

from streams import json_bytes

log = logging.getLogger("callpulse.tables")

# The tables' encoding: the bytes Faust's json codec writes, in exact-size objects. The
# "callpulse-table-json" codec Faust uses for these tables (streams.pipeline) calls encode_value.
TABLE_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def encode_key(key: str) -> bytes:
    return json_bytes.dumps(key, option=TABLE_JSON_OPTIONS)


def encode_value(value: Any) -> bytes:
    return json_bytes.dumps(value, option=TABLE_JSON_OPTIONS)


class BatchedTable:
    """Batched access to one partition-keyed Faust table on the RocksDB store.

        contacts = BatchedTable(app, app.Table("contacts", ...))
        states = contacts.get_many(partition, ["c1", "c2"])   # {"c1": {...}, "c2": None}
        await contacts.put_many(partition, {"c1": new_state, "c2": None})  # None deletes
    """

    def __init__(self, app: faust.App, table: faust.Table,
                 on_unsent: Callable[[BaseException], None] | None = None) -> None:
        self.app = app
        self.table = table
        self.on_unsent = on_unsent

    def _db(self, partition: int):
        # Faust's store opens a partition's database on first use; it is open while the
        # partition is assigned to this worker, which is when its messages reach an agent.
        return self.table.data._db_for_partition(partition)

    def get_many(self, partition: int, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of `keys` (None where missing), with one RocksDB multi-get."""
        keys = list(keys)
        if not keys:
            return {}
        raw = self._db(partition).get([encode_key(key) for key in keys])
        return {key: (orjson.loads(value) if value is not None else None) for key, value in zip(keys, raw)}

    async def put_many(self, partition: int, changes: Mapping[str, Any]) -> None:
        """Store `changes` (a value of None deletes the key) and queue them for the changelog.

        RocksDB is written at once. The changelog records are handed to aiokafka
        before this returns, and are sent before Faust's next commit (see the
        module docstring).
        """
        if not changes:
            return
        db = self._db(partition)
        writes = rocksdict.WriteBatch(raw_mode=True)
        records: list[tuple[bytes, bytes | None]] = []
        for key, value in changes.items():
            key_bytes = encode_key(key)
            if value is None:
                writes.delete(key_bytes)
                records.append((key_bytes, None))
            else:
                value_bytes = encode_value(value)
                writes.put(key_bytes, value_bytes)
                records.append((key_bytes, value_bytes))
        db.write(writes)
        await self._send_changelog(partition, records)

    async def _send_changelog(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        producer = self.app.producer._ensure_producer()
        topic = self.table.changelog_topic.get_topic_name()
        batch, count = producer.create_batch(), 0
        for key, value in records:
            # A full batch refuses the record; an empty one takes any record (a record too big
            # for the broker then fails delivery, and on_unsent reports it).
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._send_batch(producer, batch, topic, partition, count)
                batch, count = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)
            count += 1
        await self._send_batch(producer, batch, topic, partition, count)

    async def _send_batch(self, producer, batch, topic: str, partition: int, count: int) -> None:
        batch.close()
        delivered = await producer.send_batch(batch, topic, partition=partition)
        delivered.add_done_callback(lambda future: self._on_delivered(future, partition, count))

    def _on_delivered(self, future: asyncio.Future, partition: int, count: int) -> None:
        """Remember the last changelog offset in RocksDB, as Faust does (recovery reads on from it)."""
        if future.cancelled():
            return
        problem = future.exception()
        if problem is not None:
            log.error("%s changelog records for partition %d were not delivered: %s",
                      self.table.name, partition, problem)
            if self.on_unsent is not None:
                self.on_unsent(problem)
            return
        store = self.table.data
        if partition not in store._dbs:
            return  # revoked meanwhile: its next owner recovers from the changelog itself
        last = future.result().offset + count - 1
        store.set_persisted_offset(TP(self.table.changelog_topic.get_topic_name(), partition), last)
