"""Input batching: forward the input topic to an internal topic in batches, so Faust handles one message per batch.

Faust's per-message path costs about 200 microseconds of CPU per message
(README: performance), far more than callpulse's own work per event. External
producers write one event per Kafka message, so a plain aiokafka consumer in
the worker (the *forwarder*) reads the input topic and writes each partition's
records, many at a time, as one message to partition N of `<app>-input-batches`.
The lifecycle agent consumes that topic, so Faust still owns processing,
tables, changelogs, commits and rebalancing; only the fan-in is done here.

Ownership follows Faust: the forwarder reads exactly the input partitions
whose batch partition Faust assigned to this worker. Where to resume is read
from the batch topic itself (the input offset of the newest forwarded record),
falling back to the offsets the forwarder commits once batches are processed,
so nothing is forwarded twice after a restart unless a crash or rebalance
races with a batch in flight (then the lifecycle counts the copies as
duplicates: its dedupe drops them).

Frame layout of a batch message (binary-safe, so malformed input reaches the
dead-letter topic byte for byte): one JSON header line, then the records'
keys and values concatenated:

    {"v":1,"p":3,"r":<forwarded at, ms>,"o":[offsets],"ts":[timestamps ms],"k":[key lengths],"n":[value lengths]}\\n
    <key 0><value 0><key 1><value 1>...

A length of -1 is a null key or value. The frame goes compressed (zlib, level 1):
JSON events shrink about tenfold for about a microsecond each (compressing and
decompressing), so a 5,000-event batch is a message of about 90 KB, and the
broker stores and serves a tenth of the bytes. `decode_batch` also reads uncompressed frames
(they start with `{`), as workers before compression wrote them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("callpulse.forwarder")

FRAME_VERSION = 1
# Bigger batches mean fewer table reads and writes per event (a contact touched by several
# events of a batch is read and written once): over the bench backlog, 0.28 contact writes
# per event with 5,000 records against 0.49 with 2,000. The gain in throughput was within
# the run-to-run spread (README: performance).
MAX_RECORDS_PER_BATCH = 5_000  # < POSITIONS_PER_BATCH (streams.pipeline), so positions stay unique
MAX_BATCH_BYTES = 4 * 1024 * 1024  # the records' keys and values, before compression
# A compressed frame above this is split in two (input that does not compress): Kafka's
# default message limit is 1 MB.
MAX_FRAME_BYTES = 900 * 1024
COMPRESSION_LEVEL = 1
MAX_AHEAD_RECORDS = 20_000  # per partition: forwarded but not yet processed, before pausing the read
# Per partition: batches forwarded and not yet processed, before the next records wait to
# join a bigger batch (see due_batches); and the longest such a wait.
MAX_IN_FLIGHT_BATCHES = 1
MAX_HOLD_SECONDS = 1.0
COMMIT_INTERVAL_SECONDS = 5.0
TAIL_READ_SECONDS = 10.0


class InputRecord(NamedTuple):
    """One input message as the forwarder read it.

    A named tuple rather than a frozen dataclass: one is built per input record, twice
    (when read, and when its batch is decoded), and a tuple is built several times faster.
    """

    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class InputBatch:
    """One decoded batch message: consecutive records of one input partition."""

    partition: int
    forwarded_at_ms: int
    records: list[InputRecord]

    @property
    def last_offset(self) -> int:
        return self.records[-1].offset


def encode_batch(partition: int, records: Sequence[InputRecord], forwarded_at_ms: int) -> bytes:
    """The frame of one batch (see the module docstring)."""
    if not records:
        raise ValueError("a batch holds at least one record")
    header = {
        "v": FRAME_VERSION,
        "p": partition,
        "r": forwarded_at_ms,
        "o": [r.offset for r in records],
        "ts": [r.timestamp_ms for r in records],
        "k": [-1 if r.key is None else len(r.key) for r in records],
        "n": [-1 if r.value is None else len(r.value) for r in records],
    }
    parts = [orjson.dumps(header), b"\n"]
    for r in records:
        if r.key is not None:
            parts.append(r.key)
        if r.value is not None:
            parts.append(r.value)
    return zlib.compress(b"".join(parts), COMPRESSION_LEVEL)


def encode_frames(partition: int, records: Sequence[InputRecord], forwarded_at_ms: int) -> list[bytes]:
    """The frames of one batch: one, or halves (recursively) while a frame exceeds MAX_FRAME_BYTES."""
    frame = encode_batch(partition, records, forwarded_at_ms)
    if len(frame) <= MAX_FRAME_BYTES or len(records) == 1:
        return [frame]
    half = len(records) // 2
    return (encode_frames(partition, records[:half], forwarded_at_ms)
            + encode_frames(partition, records[half:], forwarded_at_ms))


def decode_batch(frame: bytes) -> InputBatch:
    """Inverse of encode_batch; raises ValueError on anything that is not a frame of this version."""
    if frame[:1] != b"{":  # compressed (an uncompressed frame starts with its JSON header)
        try:
            frame = zlib.decompress(frame)
        except zlib.error as problem:
            raise ValueError(f"not an input batch: {problem}") from None
    end = frame.find(b"\n")
    if end < 0:
        raise ValueError("not an input batch: no header line")
    header = orjson.loads(frame[:end])
    if not isinstance(header, dict) or header.get("v") != FRAME_VERSION:
        raise ValueError(f"not an input batch of version {FRAME_VERSION}")
    records = []
    position = end + 1
    for offset, timestamp, key_length, value_length in zip(
            header["o"], header["ts"], header["k"], header["n"], strict=True):
        key = None
        if key_length >= 0:
            key = frame[position:position + key_length]
            position += key_length
        value = None
        if value_length >= 0:
            value = frame[position:position + value_length]
            position += value_length
        records.append(InputRecord(offset, timestamp, key, value))
    if position != len(frame):
        raise ValueError("input batch length does not match its header")
    return InputBatch(header["p"], header["r"], records)


def split_batches(records: Iterable[InputRecord]) -> list[list[InputRecord]]:
    """Consecutive records cut into batches of at most MAX_RECORDS_PER_BATCH records and about MAX_BATCH_BYTES."""
    batches: list[list[InputRecord]] = []
    current: list[InputRecord] = []
    size = 0
    for record in records:
        length = len(record.value or b"") + len(record.key or b"") + 32
        if current and (len(current) >= MAX_RECORDS_PER_BATCH or size + length > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += length
    if current:
        batches.append(current)
    return batches


def due_batches(waiting: list[InputRecord], in_flight: int, waited_seconds: float,
                unread: int = 0) -> tuple[list[list[InputRecord]], list[InputRecord]]:
    """Which of a partition's waiting records to forward now (as batches), and which keep waiting.

    Each forwarded batch costs the lifecycle agent about the same, whatever its size
    (a Faust message, a multi-get, a write batch, changelog and fact messages). So
    while MAX_IN_FLIGHT_BATCHES of the partition's batches still wait for the agent,
    new records wait too and join one bigger batch: under light load every fetch goes
    at once, and a busy worker gets fewer, bigger batches instead of falling behind.
    Full batches always go, and nothing waits longer than MAX_HOLD_SECONDS. One batch
    in flight gave lower latency than two at 2,000 events/s (README: performance).

    `unread` is how many records of the partition the broker holds beyond the waiting
    ones. In a backlog a fetch brings only part of a batch per partition; the rest
    follows at once, so a part batch that the broker's records can fill waits for them
    even with no batch in flight, and the lifecycle gets full batches (4,586 records on
    average over the bench backlog). Only then: in live traffic the consumer has often
    fetched a few records more than it returned, and holding for those took the
    latency step's p99 from 0.99 s to 1.44 s.
    """
    batches = split_batches(waiting)
    if not batches or waited_seconds >= MAX_HOLD_SECONDS:
        return batches, []
    if in_flight < MAX_IN_FLIGHT_BATCHES and len(batches[-1]) + unread < MAX_RECORDS_PER_BATCH:
        return batches, []
    if len(batches[-1]) >= MAX_RECORDS_PER_BATCH:
        return batches, []
    return batches[:-1], batches[-1]


class InputForwarder:
    """Reads the owned input partitions and forwards them as batches (one instance per worker).

    `send(partition, frame)` produces one batch message and returns an awaitable
    for its delivery; `processed_through(partition)` is the newest input offset
    the lifecycle agent has in its table (None when unknown), used for the
    commits and to keep the read at most MAX_AHEAD_RECORDS ahead.
    """

    def __init__(self, *, bootstrap_servers: str, security: dict, group_id: str, input_topic: str,
                 batch_topic: str, send: Callable, processed_through: Callable[[int], int | None],
                 fetch_max_wait_ms: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.security = security
        self.group_id = group_id
        self.input_topic = input_topic
        self.batch_topic = batch_topic
        self.send = send
        self.processed_through = processed_through
        self.wanted: set[int] = set()
        self.assigned: set[int] = set()
        self.forwarded: dict[int, int] = {}  # partition -> newest input offset sent
        self.in_flight: dict[int, deque[int]] = {}  # partition -> last input offset of each unprocessed batch
        self.waiting: dict[int, list[InputRecord]] = {}  # partition -> fetched records not forwarded yet
        self.waiting_since: dict[int, float] = {}
        self.fresh: set[int] = set()  # partitions with records held since their last due_batches
        self.committed: dict[int, int] = {}
        self.changed = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None

    def own(self, partitions: set[int]) -> None:
        """The input partitions to forward from now on (Faust's assignment of the batch topic)."""
        self.wanted = set(partitions)
        self.changed.set()

    def highwater(self, partition: int) -> int | None:
        """The input partition's end offset as last fetched (None before the first fetch)."""
        if self.consumer is None or partition not in self.assigned:
            return None
        return self.consumer.highwater(TopicPartition(self.input_topic, partition))

    async def run(self) -> None:
        """Forward until cancelled."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024, fetch_max_wait_ms=self.fetch_max_wait_ms, **self.security)
        await self.consumer.start()
        last_commit = time.monotonic()
        try:
            while True:
                if self.changed.is_set() or self.wanted != self.assigned:
                    self.changed.clear()
                    await self._reassign()
                if not self.assigned:
                    await self.changed.wait()
                    continue
                self._apply_backpressure()
                fetched = await self.consumer.getmany(timeout_ms=50, max_records=4 * MAX_RECORDS_PER_BATCH)
                for tp, messages in fetched.items():
                    if tp.partition in self.assigned and messages:
                        self._hold(tp.partition, messages)
                await self._forward_due()
                if time.monotonic() - last_commit >= COMMIT_INTERVAL_SECONDS:
                    last_commit = time.monotonic()
                    await self._commit()
        finally:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    def _hold(self, partition: int, messages) -> None:
        if not self.waiting.get(partition):
            self.waiting_since[partition] = time.monotonic()
        self.waiting.setdefault(partition, []).extend(
            InputRecord(m.offset, m.timestamp, m.key, m.value) for m in messages)
        self.fresh.add(partition)

    async def _forward_due(self) -> None:
        now = time.monotonic()
        for partition in sorted(self.waiting):
            waiting = self.waiting[partition]
            if not waiting:
                continue
            in_flight = self.in_flight.setdefault(partition, deque())
            processed = self.processed_through(partition)
            if processed is None:
                in_flight.clear()  # unknown until the lifecycle has processed a batch of this partition
            while in_flight and in_flight[0] <= processed:
                in_flight.popleft()
            waited = now - self.waiting_since[partition]
            if (len(in_flight) >= MAX_IN_FLIGHT_BATCHES and waited < MAX_HOLD_SECONDS
                    and partition not in self.fresh):
                continue  # nothing new since due_batches kept these records: it would keep them again
            self.fresh.discard(partition)
            highwater = self.consumer.highwater(TopicPartition(self.input_topic, partition))
            unread = 0 if highwater is None else highwater - (waiting[-1].offset + 1)
            batches, keep = due_batches(waiting, len(in_flight), waited, unread)
            if not batches:
                continue
            now_ms = int(time.time() * 1000)
            for batch in batches:
                for frame in encode_frames(partition, batch, now_ms):
                    await self.send(partition, frame)
                in_flight.append(batch[-1].offset)
            self.forwarded[partition] = batches[-1][-1].offset
            self.waiting[partition] = keep  # what is kept has waited since waiting_since or later

    def _apply_backpressure(self) -> None:
        for partition in self.assigned:
            tp = TopicPartition(self.input_topic, partition)
            processed = self.processed_through(partition)
            forwarded = self.forwarded.get(partition)
            # Unknown until the lifecycle has processed a batch of this partition: no limit till then.
            ahead = 0 if forwarded is None or processed is None else forwarded - processed
            ahead += len(self.waiting.get(partition) or ())
            paused = tp in self.consumer.paused()
            if ahead > MAX_AHEAD_RECORDS and not paused:
                self.consumer.pause(tp)
            elif ahead <= MAX_AHEAD_RECORDS and paused:
                self.consumer.resume(tp)

    async def _reassign(self) -> None:
        wanted = set(self.wanted)
        added = wanted - self.assigned
        await self._commit()
        self.consumer.assign([TopicPartition(self.input_topic, p) for p in sorted(wanted)])
        self.assigned = wanted
        for partition in list(self.forwarded):
            if partition not in wanted:
                del self.forwarded[partition]
                self.committed.pop(partition, None)
        # assign() starts every partition afresh, at its committed offset (one past what the
        # lifecycle processed) or the seek below: what waited or was in flight is read again.
        self.waiting.clear()
        self.in_flight.clear()
        self.fresh.clear()
        if not added:
            return
        resume = await self._resume_offsets(added)
        # Beginnings by one offsets request: seek_to_beginning waits for the fetcher, one
        # partition at a time (40 s for one partition of eight seen under `make run`).
        fresh = [TopicPartition(self.input_topic, p) for p in sorted(added) if resume.get(p) is None]
        beginnings = await self.consumer.beginning_offsets(fresh) if fresh else {}
        for partition in sorted(added):
            tp = TopicPartition(self.input_topic, partition)
            if resume.get(partition) is None:
                self.consumer.seek(tp, beginnings[tp])
                log.info("forwarding input partition %d from its beginning (offset %d)", partition, beginnings[tp])
            else:
                self.consumer.seek(tp, resume[partition])
                self.forwarded[partition] = resume[partition] - 1
                log.info("forwarding input partition %d from offset %d", partition, resume[partition])

    async def _resume_offsets(self, partitions: set[int]) -> dict[int, int | None]:
        """Per partition: one past the newest input offset in the batch topic, or the committed offset."""
        tail = await newest_batch_offsets(self.bootstrap_servers, self.security, self.batch_topic, partitions)
        resume: dict[int, int | None] = {}
        for partition in partitions:
            committed = await self.consumer.committed(TopicPartition(self.input_topic, partition))
            candidates = [o for o in (committed, None if tail.get(partition) is None else tail[partition] + 1)
                          if o is not None]
            resume[partition] = max(candidates) if candidates else None
        return resume

    async def _commit(self) -> None:
        """Commit, per owned partition, one past the newest input offset the lifecycle has processed."""
        offsets = {}
        for partition in self.assigned:
            processed = self.processed_through(partition)
            if processed is not None and processed >= 0 and self.committed.get(partition) != processed:
                offsets[TopicPartition(self.input_topic, partition)] = processed + 1
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance of the group or a broker hiccup: the next commit retries
            log.warning("forwarder commit failed (will retry): %s", exc)
            return
        for tp, offset in offsets.items():
            self.committed[tp.partition] = offset - 1


async def newest_batch_offsets(bootstrap_servers: str, security: dict, batch_topic: str,
                               partitions: set[int]) -> dict[int, int | None]:
    """Per partition of the batch topic: the input offset of the newest forwarded record (None if empty).

    Reads from the reported end offset - 1 and keeps the newest frame seen: some
    brokers (tansu 0.6) report the end of a partition as the base offset of its
    last record batch + 1, so the last frame may sit after that offset.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                group_id=None, **security)
    await consumer.start()
    try:
        tps = [TopicPartition(batch_topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        newest: dict[int, int | None] = {p: None for p in partitions}
        pending = set()
        for tp in tps:
            if ends.get(tp):
                consumer.seek(tp, ends[tp] - 1)
                pending.add(tp)
            else:
                consumer.pause(tp)
        deadline = time.monotonic() + TAIL_READ_SECONDS
        newest_offset: dict[TopicPartition, int] = {}
        while pending and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=200)
            for tp, messages in fetched.items():
                for message in messages:
                    if message.offset >= newest_offset.get(tp, -1):
                        newest_offset[tp] = message.offset
                        newest[tp.partition] = decode_batch(message.value).last_offset
                # A fetch returns whole record batches, so once the record at the reported end - 1
                # is in, the last batch (and so the newest frame) is too.
                if tp in pending and newest_offset.get(tp, -1) >= ends[tp] - 1:
                    pending.discard(tp)
                    consumer.pause(tp)
        if pending:
            raise RuntimeError(f"could not read the end of {batch_topic} partitions "
                               f"{sorted(tp.partition for tp in pending)} within {TAIL_READ_SECONDS:.0f} s")
        return newest
    finally:
        await consumer.stop()
