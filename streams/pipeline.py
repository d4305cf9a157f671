"""The Faust application: topics, tables and agents wired around the pure rules.

Data flow (README: architecture):

    callpulse.contact-events --> forwarder (streams.input_batches: many events per message)
                                     |
    <app>-input-batches -------------+
                               +--> lifecycle agent (contacts, agents tables; keyed by contact/agent id)
    <app>-ticks (internal) ----+        | gauge deltas at once, outcome facts when final
                                        v
                               <app>-queue-facts (keyed by channel:queue)
                                        |
                                        v
                               queue agent (queues table) --> /metrics, /queues, callpulse.queue-stats

The lifecycle agent consumes the input batches (partition N holds input
partition N) and an internal tick topic with the same partition count (Faust
assigns both partition N to the same worker), so everything it writes is
co-partitioned. It processes a whole batch at a time: each contact's state is
read once, changed by all its events of the batch and written once, and the
facts go out as one message per queue. A sweep timer sends each owned
partition a tick with the partition's watermark and the contacts that have
something due; processing the tick finalises them. Watermarks therefore travel
through Kafka and are replayed exactly after a restart.

The contacts and agents tables are read and written a batch at a time
(streams.table_batches): one RocksDB multi-get, one write batch, and changelog
records in bulk, instead of Faust's one message per key write.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import faust
import orjson
from faust.serializers import codecs
from faust.types import TP

from streams import json_bytes
from streams.agents import apply_agent_event
from streams.config import CallpulseConfig
from streams.contract import events as ev
from streams.contract.dead_letter import dead_letter_record
from streams.contract.events import InvalidEvent, format_ms, parse_event
from streams.faust_fetch import limit_fetch_wait
from streams.faust_offsets import OffsetGuard
from streams.input_batches import InputForwarder, InputRecord, decode_batch
from streams.kafka import existing_topics, key_partition, track_sent_topics_in_faust
from streams.lifecycle import contact as lc
from streams.lifecycle import facts as f
from streams.metrics.catalogue import wait_buckets
from streams.metrics.exporter import QueueCollector
from streams.metrics.health import PipelineHealth
from streams.platforms.agents import register_raw_agents
from streams.queues import state as qs
from streams.settings import Settings
from streams.table_batches import BatchedTable, encode_value
from streams.web import register_views

log = logging.getLogger("callpulse")

DEAD_LETTER_TOPIC = "callpulse.dead-letter"
OUTCOMES_TOPIC = "callpulse.contact-outcomes"
QUEUE_STATS_TOPIC = "callpulse.queue-stats"
MAX_TICK_CONTACTS = 2000
SWEEP_INTERVAL_SECONDS = 1.0  # each owned partition gets a tick this often
# The interval is cut into this many slots, and partition p's tick goes in slot p % SWEEP_SLOTS:
# the lifecycle agent then meets one tick at a time between input batches, not all the
# partitions' ticks in a row (with 8 partitions that was about 0.35 s in which no batch was
# processed, every second: README, performance).
SWEEP_SLOTS = 8
# Finished contacts (tombstones, kept for deduplication) are due only for their deletion once
# the dedupe retention passes: indexed by the minute they are due, not one by one (see _index).
TOMBSTONE_BUCKET_MS = 60_000
TICK_POSITION_STRIDE = 10_000  # src index of a tick fact: contact position * stride + fact index
# An event's position (its "offset" in the contact state) is batch offset * this + its index in
# the batch: unique, increasing, and the same when a batch is replayed.
POSITIONS_PER_BATCH = 100_000
# The queue agent writes each queue state it changed once per interval, not once per facts
# message: a queue state holds an hour of 10 s buckets (tens of KB), and live traffic brings a
# few hundred facts messages a second. Commits of the facts topic wait for these writes.
QUEUE_FLUSH_INTERVAL_SECONDS = 1.0
FACTS_PER_EVENT = 4  # src index of an input fact: event index * this + fact index (apply_event sends <= 3)


class OrjsonCodec(codecs.Codec):
    """Table values as JSON through orjson (fast, and readable in the changelog)."""

    def _dumps(self, obj) -> bytes:
        return json_bytes.dumps(obj)

    def _loads(self, data: bytes):
        return orjson.loads(data)


class TableJsonCodec(codecs.Codec):
    """Table keys and values, byte for byte as Faust's default json codec writes them, in exact-size bytes.

    Faust encodes table keys and values (store and changelog) with its json
    codec, orjson underneath; every changelog message waiting for the producer
    then holds two 4 KB objects (see streams.json_bytes).
    """

    def _dumps(self, obj) -> bytes:
        return encode_value(obj)  # the same bytes BatchedTable writes

    def _loads(self, data: bytes):
        return orjson.loads(data)


class Utf8Codec(codecs.Codec):
    """Table keys as UTF-8 strings."""

    def _dumps(self, obj) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, data: bytes) -> str:
        return data.decode()


codecs.register("orjson", OrjsonCodec())
codecs.register("utf8", Utf8Codec())
codecs.register("callpulse-table-json", TableJsonCodec())


@dataclass
class PartitionClock:
    """Event-time progress of one input partition, as this worker has seen it since assignment."""

    stream_time_ms: int = 0
    last_event_monotonic: float = field(default_factory=time.monotonic)
    # Highest event position in the contacts table (a tick covers events up to it); None
    # right after an assignment, until resolved from the batch offset reading resumed at.
    input_offset: int | None = None
    # Newest input offset processed since the assignment (None until a batch is processed).
    input_through: int | None = None
    # Ticks replayed ahead of the input they cover, waiting for it (see _on_tick).
    waiting_ticks: list = field(default_factory=list)


def limits_from(config: CallpulseConfig) -> lc.Limits:
    p = config.processing
    return lc.Limits(
        skew_ms=int(p.reorder_skew_seconds * 1000),
        expiry_ms=int(p.contact_expiry_seconds * 1000),
        dedupe_retention_ms=int(p.dedupe_retention_seconds * 1000),
        wrapup_timeout_ms=int(p.wrapup_timeout_seconds * 1000),
    )


class Pipeline:
    """One callpulse worker: the Faust app and the in-memory indexes around its tables."""

    def __init__(self, settings: Settings, config: CallpulseConfig,
                 wall_clock_ms: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.config = config
        self.limits = limits_from(config)
        self.wait_edges = wait_buckets(config.service_level_thresholds() | config.short_abandon_thresholds())
        self.wall_clock_ms = wall_clock_ms or (lambda: int(time.time() * 1000))
        self.health = PipelineHealth()
        self.clocks: dict[int, PartitionClock] = {}
        # Per input partition: contact id -> due watermark, and a lazy heap of (due, id).
        self.due: dict[int, dict[str, int]] = defaultdict(dict)
        self.heaps: dict[int, list[tuple[int, str]]] = defaultdict(list)
        # Per input partition: tombstones by due bucket (due // TOMBSTONE_BUCKET_MS), and a heap of buckets.
        self.tombstones: dict[int, dict[int, list[str]]] = defaultdict(dict)
        self.tombstone_heaps: dict[int, list[int]] = defaultdict(list)
        # What /metrics and /queues export, kept in memory: iterating a table means reading
        # every version RocksDB still holds of every key, far too slow for each scrape.
        # Rebuilt from the tables after each recovery, updated with every write.
        self.queue_exports: dict[str, dict] = {}  # queue key -> queue state
        self.agent_exports: dict[str, dict] = {}  # agent id -> agent state
        self.queue_partitions: dict[str, int] = {}  # queue key -> its facts partition (queue_partition)
        # Queue states changed since the last flush, by facts partition, and the last facts offset
        # applied, by partition: written and declared durable by _flush_queue_states.
        self.queue_dirty: dict[int, set[str]] = defaultdict(set)
        self.queue_applied: dict[TP, int] = {}
        self.queue_generation = 0  # moves on at each revocation: a flush begun before it declares nothing
        self.ready = False
        self.outputs_declared = False  # the derived topics exist (_declare_outputs)
        self.sweep_slot = -1  # the slot of the last sweep (see SWEEP_SLOTS)
        self.app = self._create_app()
        self.forwarder = InputForwarder(
            bootstrap_servers=settings.bootstrap_servers, security=settings.aiokafka_security(),
            group_id=f"{settings.app_id}-forwarder", input_topic=settings.input_topic,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            batch_topic=self.batch_topic.get_topic_name(), send=self._send_batch,
            processed_through=self._input_through)
        self.registry = self.health.registry
        self.registry.register(QueueCollector(
            queue_states=self.owned_queue_states, agent_states=self.owned_agent_states, config=config,
            wait_edges=self.wait_edges, now_ms=self.wall_clock_ms, max_wait_age_ms=self.limits.expiry_ms,
            tracked_contacts=self.tracked_contacts, newest_event_ms=self.newest_event_time_ms,
            consumer_lag=self.consumer_lag))
        register_views(self)
        register_raw_agents(self)

    # ----- wiring -------------------------------------------------------------------------

    def _create_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            broker=s.broker,
            broker_credentials=s.faust_credentials(),
            store="rocksdb://",
            datadir=str(s.data_dir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            table_standby_replicas=s.standby_replicas,
            # Quick group joins (the embedded broker waits ~30 s with the defaults);
            # 6 s is Apache Kafka's minimum session timeout, so this holds there too.
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=10.0,
            consumer_auto_offset_reset="earliest",
            processing_guarantee="at_least_once",
            web_port=s.web_port,
            web_bind=s.web_host,
            web_in_thread=False,
            canonical_url=f"http://{s.advertised_host}:{s.web_port}",
            autodiscover=False,
            rocksdb_options={
                "write_buffer_size": 4 * 1024**2,
                "max_write_buffer_number": 2,
                "target_file_size_base": 16 * 1024**2,
                "block_cache_size": 16 * 1024**2,
                "block_cache_compressed_size": 4 * 1024**2,
            },
            logging_config=None,
            producer_max_batch_size=s.producer_max_batch_bytes,
            # Messages of consecutive lifecycle messages share record batches: fewer produce
            # requests, fewer record batches for the broker (README: performance).
            producer_linger=0.01,
        )
        partitions = s.partitions
        # internal=True: the worker creates these topics when missing, with `partitions`
        # (the input topic's own count when it exists, see cli.worker).
        self.tick_topic = app.topic(f"{s.app_id}-ticks", key_serializer="raw", value_serializer="raw",
                                    partitions=partitions, internal=True)
        # Not consumed by Faust (the forwarder reads it), but created like the other topics
        # when missing, with `partitions`, before the worker reports ready.
        self.input_topic = app.topic(s.input_topic, key_serializer="raw", value_serializer="raw",
                                     partitions=partitions, internal=True)
        self.batch_topic = app.topic(f"{s.app_id}-input-batches", key_serializer="raw",
                                     value_serializer="raw", partitions=partitions, internal=True)
        self.facts_topic = app.topic(f"{s.app_id}-queue-facts", key_serializer="raw",
                                     value_serializer="raw", partitions=partitions, internal=True)
        # The derived topics: written, never read, so Faust never declares them (_declare_outputs does).
        self.dead_letter_topic = app.topic(DEAD_LETTER_TOPIC, key_serializer="raw", value_serializer="raw",
                                           partitions=partitions, internal=True)
        self.outcomes_topic = app.topic(OUTCOMES_TOPIC, key_serializer="raw", value_serializer="raw",
                                        partitions=partitions, internal=True)
        self.queue_stats_topic = app.topic(QUEUE_STATS_TOPIC, key_serializer="raw", value_serializer="raw",
                                           partitions=partitions, internal=True)
        table_options = {"schema": faust.Schema(key_serializer="utf8", value_serializer="orjson"),
                         "partitions": partitions}
        self.contacts = app.Table("contacts", default=None, **table_options)
        self.agents = app.Table("agents", default=None, **table_options)
        self.queues = app.Table("queues", default=None, **table_options)
        for table in (self.contacts, self.agents, self.queues):
            # Faust takes these from the key and value types (none: its json codec); set
            # before the store is opened (on start). Same bytes, so existing state reads as before.
            table.key_serializer = table.value_serializer = "callpulse-table-json"
        self.contacts.on_recover(self._rebuild_index)
        # Every write of these three goes through BatchedTable (streams.table_batches: one writer per table).
        self.contact_table = BatchedTable(app, self.contacts, on_unsent=self._on_changelog_unsent)
        self.agent_table = BatchedTable(app, self.agents, on_unsent=self._on_changelog_unsent)
        self.queue_table = BatchedTable(app, self.queues, on_unsent=self._on_changelog_unsent)
        lifecycle_channel = app.topic(f"{s.app_id}-input-batches", f"{s.app_id}-ticks", key_serializer="raw",
                                      value_serializer="raw", partitions=partitions, internal=True)
        app.agent(lifecycle_channel, name="lifecycle")(self._lifecycle_agent)
        app.task(self._run_forwarder)
        app.agent(self.facts_topic, name="queue-aggregation")(self._queue_agent)
        app.timer(SWEEP_INTERVAL_SECONDS / SWEEP_SLOTS, name="sweep")(self._sweep)
        app.timer(self.config.processing.queue_stats_interval_seconds, name="queue-stats")(self._publish_queue_stats)
        app.timer(QUEUE_FLUSH_INTERVAL_SECONDS, name="queue-flush")(self._flush_queue_states)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_revoked)
        own_topics = {topic.get_topic_name() for topic in (self.batch_topic, self.tick_topic, self.facts_topic)}
        self.offsets = OffsetGuard(
            app,
            is_stream_topic=lambda topic: (topic not in app.tables.changelog_topics
                                           and not topic.endswith("__assignor-__leader")),
            is_gapless_topic=own_topics.__contains__)
        self.offsets.install()
        self.offsets.defer_commits(self.facts_topic.get_topic_name())  # see _flush_queue_states
        limit_fetch_wait(app, s.fetch_max_wait_ms)
        track_sent_topics_in_faust(app)  # several topics, some created after start (streams/kafka.py)
        return app

    async def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
                       must_deliver: bool = True) -> None:
        """Hand one message to Faust's producer (key None and no partition: aiokafka's partitioner picks).

        The worker's outputs go through here: facts, outcome records, dead letters, queue
        snapshots, the sweep's ticks and the platform adapters' events. The forwarder's
        batches go to the same producer directly (the forwarder awaits each delivery).

        Not Topic.send: that goes through App.maybe_start_producer, whose stampede guard
        yields to the event loop three times per message, so an agent sending a tick's
        outcome records waited tens of milliseconds for other tasks between them
        (README: performance). Faust's consumer flushes this producer before each commit.
        A message that cannot be delivered stops the worker when `must_deliver`
        (its input must not be committed without it), and is logged otherwise.
        """
        delivered = await self.app.producer.send(topic, key, value, partition, None, None)
        delivered.add_done_callback(self._on_output_delivered if must_deliver else _log_undelivered)

    def _on_output_delivered(self, delivered: asyncio.Future) -> None:
        if delivered.cancelled() or delivered.exception() is None:
            return
        _log_undelivered(delivered)
        self._stop(f"output not delivered: {delivered.exception()}")

    def _on_changelog_unsent(self, problem: BaseException) -> None:
        """A changelog write failed for good: stop, rather than commit input whose state is not in Kafka."""
        self._stop(f"changelog records not delivered: {problem}")

    def _stop(self, reason: str) -> None:
        asyncio.ensure_future(self.app.crash(RuntimeError(reason)))

    async def _run_forwarder(self) -> None:
        try:
            await self._create_missing((self.input_topic,))
            await self.forwarder.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the input forwarder failed: stopping the worker")
            await self.app.crash(RuntimeError("input forwarder failed"))

    async def _send_batch(self, partition: int, frame: bytes):
        return await self.app.producer.send(self.batch_topic.get_topic_name(), key=None, value=frame,
                                            partition=partition, timestamp=None, headers=None)

    def _input_through(self, partition: int) -> int | None:
        clock = self.clocks.get(partition)
        return clock.input_through if clock is not None else None

    # ----- ownership ----------------------------------------------------------------------

    def active_partitions(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def queue_partition(self, key: str) -> int:
        """The partition of the facts topic (and so of the queues table) that queue `key` lives in."""
        partition = self.queue_partitions.get(key)
        if partition is None:
            partition = self.queue_partitions[key] = key_partition(key.encode(), self.settings.partitions)
        return partition

    def queue_owner_url(self, key: str) -> str | None:
        """The web URL of the worker that owns queue `key`, None before an assignment.

        Not Faust's router.key_store: that hashes the key as the table's serializer
        writes it (JSON, with quotes), while a queue lives in the partition its facts
        go to (queue_partition: the raw key), so it named the wrong worker for most queues.
        """
        partition = self.queue_partition(key)
        topic = self.queues.changelog_topic.get_topic_name()
        for url, topics in self.app.router.table_metadata("queues").items():
            if partition in topics.get(topic, ()):
                return url
        return None

    def owned_queue_states(self) -> list[tuple[str, dict]]:
        """(queue key, state) of the queues whose partition this worker actively owns now.

        Nothing while a rebalance or recovery runs: a short gap is better than a
        queue exported by two workers, or by one whose table is not restored yet.
        """
        if not self.ready or self.app.rebalancing:
            return []
        owned = self.active_partitions(self.facts_topic.get_topic_name())
        return [(key, value) for key, value in self.queue_exports.items() if value.get("p") in owned]

    def owned_agent_states(self) -> list[dict]:
        if not self.ready or self.app.rebalancing:
            return []
        owned = self.active_partitions(self.batch_topic.get_topic_name())
        return [value for value in self.agent_exports.values() if value.get("p") in owned]

    async def _on_revoked(self, sender, revoked: set[TP], **kwargs) -> None:
        """A rebalance starts (Faust sends this first, even on the first assignment).

        Not ready until the recovery that follows rebuilds the index. This is done here,
        not in _on_assigned: a quick recovery can finish before that signal is sent.
        """
        self.ready = False
        self._clear_due_index()
        # Queue changes not written yet are dropped: their facts were not committed (defer_commits),
        # so they are read again, and applied to the states recovery restores (queue_exports).
        self.queue_generation += 1
        self.queue_dirty.clear()
        self.queue_applied.clear()
        self.offsets.forget_durable()
        self.forwarder.own(set())  # until the new assignment: never forward a partition another worker owns

    async def _on_assigned(self, sender, assigned: set[TP], **kwargs) -> None:
        owned = self.active_partitions(self.batch_topic.get_topic_name())
        for partition in list(self.clocks):
            if partition not in owned:
                del self.clocks[partition]
        for partition in owned:
            self.clocks.setdefault(partition, PartitionClock())
        self.forwarder.own(owned)

    async def _rebuild_index(self) -> None:
        """After recovery: index the due times of the contacts of the partitions owned now."""
        if not await self._declare_outputs():
            return  # never ready: the worker is stopping
        owned = self.active_partitions(self.batch_topic.get_topic_name())
        self._clear_due_index()
        for contact_id, state in self.contacts.items():
            if state and state.get("p") in owned:
                self._index(state["p"], contact_id, state)
        self.queue_exports = {key: value for key, value in self.queues.items() if value}
        self.agent_exports = {agent_id: value for agent_id, value in self.agents.items() if value}
        for partition in owned:
            clock = self.clocks.setdefault(partition, PartitionClock())
            clock.input_offset = None
            clock.input_through = None
            clock.waiting_ticks.clear()  # read again after the seek that follows
        self.ready = True
        log.info("recovery finished: %d contacts tracked on partitions %s", self.tracked_contacts(), sorted(owned))

    async def _declare_outputs(self) -> bool:
        """Create the derived topics when missing, with `partitions`, before anything is sent to them.

        Done once, at the end of the first recovery: before any message reaches an agent
        and before the worker reports ready. Without it they existed only where the broker
        creates topics on first use (Apache Kafka's auto.create.topics.enable, off in many
        clusters), with the broker's default partition count, and where it does not, the
        first dead letter or outcome record stopped the worker. False when a topic could
        not be created (the worker is then stopping; the error names the topic).
        """
        if self.outputs_declared:
            return True
        try:
            await self._create_missing((self.outcomes_topic, self.queue_stats_topic, self.dead_letter_topic))
        except Exception as problem:  # noqa: BLE001 (any failure stops the worker, with its cause)
            # Faust runs this in asyncio.wait, which would keep the exception to itself.
            log.error("%s", problem)
            self._stop(str(problem))
            return False
        self.outputs_declared = True
        return True

    async def _create_missing(self, topics) -> None:
        """Create those of the Faust `topics` the broker does not have (RuntimeError naming the topic if one fails).

        Existing topics are not declared again: Faust would ask the broker to create
        any topic its consumer does not read, and a cluster that lets callpulse use
        topics created for it, but not create any, refuses that.
        """
        existing = await existing_topics(self.settings)
        for topic in topics:
            name = topic.get_topic_name()
            if name in existing:
                continue
            try:
                await topic.maybe_declare()
            except Exception as problem:
                raise RuntimeError(f"cannot create the topic {name}: {problem}") from problem

    def _clear_due_index(self) -> None:
        """Forget every contact's due time (rebuilt from the table after recovery)."""
        self.due.clear()
        self.heaps.clear()
        self.tombstones.clear()
        self.tombstone_heaps.clear()

    def _index(self, partition: int, contact_id: str, state: dict | None) -> None:
        """Remember when `state` is next due for a tick (a state of None is deleted: forget it).

        A tombstone goes into the list of its due minute: a contact id in a list takes
        about 90 bytes, where an entry of `due` and its heap take about 220, and tombstones
        are most of the contacts tracked (each is kept for the dedupe retention, 2 h). A
        contact that starts over (a callback) is indexed in `due` again and its old entry
        stays in the list; ticking it then is harmless (finalize has nothing new to send).
        """
        due = self.due[partition]
        if state is None:
            due.pop(contact_id, None)
            return
        at = lc.due_ms(state, self.limits)
        if state["done"]:
            due.pop(contact_id, None)
            bucket = at // TOMBSTONE_BUCKET_MS
            buckets = self.tombstones[partition]
            ids = buckets.get(bucket)
            if ids is None:
                ids = buckets[bucket] = []
                heapq.heappush(self.tombstone_heaps[partition], bucket)
            ids.append(contact_id)
            return
        if due.get(contact_id) != at:
            due[contact_id] = at
            heapq.heappush(self.heaps[partition], (at, contact_id))

    def tracked_contacts(self) -> int:
        """Contacts in flight and tombstones (one that started over after it finished counts twice a while)."""
        return (sum(len(d) for d in self.due.values())
                + sum(len(ids) for buckets in self.tombstones.values() for ids in buckets.values()))

    def processed_input_offset(self, partition: int, clock: PartitionClock) -> int:
        """The event position up to which every event is in the contacts table.

        After an assignment that is the end of the batch before the one reading
        resumed at (the committed one, or the topic's beginning); RocksDB may hold
        more for some contacts, which is why it is not read from the table. The
        seek happens before any message reaches the agent, so the value is known by then.
        """
        if clock.input_offset is None:
            head = self.offsets.heads.get(TP(self.batch_topic.get_topic_name(), partition))
            if head is None:
                return -1  # not known yet: nothing is processed for sure
            clock.input_offset = head * POSITIONS_PER_BATCH - 1
        return clock.input_offset

    def consumer_lag(self) -> int | None:
        """Input messages not processed yet on the partitions this worker owns (None before recovery)."""
        if not self.ready:
            return None
        lag = 0
        for partition, clock in self.clocks.items():
            highwater = self.forwarder.highwater(partition)
            if highwater is not None and clock.input_through is not None:
                lag += max(0, highwater - (clock.input_through + 1))
        return lag

    def newest_event_time_ms(self) -> int | None:
        times = [c.stream_time_ms for c in self.clocks.values() if c.stream_time_ms]
        return max(times) if times else None

    # ----- lifecycle agent ----------------------------------------------------------------

    def short_abandon_seconds(self, queue: str) -> float:
        return self.config.targets_for(queue).short_abandon_seconds

    async def _lifecycle_agent(self, stream) -> None:
        tick_topic = self.tick_topic.get_topic_name()
        async for event in stream.events():
            message = event.message
            clock = self.clocks.setdefault(message.partition, PartitionClock())
            if not self.offsets.in_order(message):
                await self.offsets.read_again(message.tp)
                continue
            if message.topic == tick_topic:
                tick = orjson.loads(message.value)
                if clock.waiting_ticks or tick["o"] > self.processed_input_offset(message.partition, clock):
                    # Replayed ahead of the input it covers: apply it right after that input,
                    # as the first run did. Later ticks wait behind it: the queue stage takes
                    # tick facts in tick order (its high-water mark drops earlier ones).
                    clock.waiting_ticks.append((message.partition, message.offset, tick))
                else:
                    await self._on_tick(message.partition, message.offset, tick)
            else:
                await self._on_batch(message, clock)
                clock.input_offset = max(self.processed_input_offset(message.partition, clock),
                                         (message.offset + 1) * POSITIONS_PER_BATCH - 1)
                while clock.waiting_ticks and clock.waiting_ticks[0][2]["o"] <= clock.input_offset:
                    await self._on_tick(*clock.waiting_ticks.pop(0))
            # One turn for the other tasks per message: the stream hands over buffered messages
            # without yielding, and the outputs no longer yield (produce), so in a backlog the
            # queue agent would wait while its facts pile up in memory (README: performance).
            await asyncio.sleep(0)

    async def _on_batch(self, message, clock: PartitionClock) -> None:
        """Apply one batch of input events: every contact and agent read once and written once.

        Order matters for restart safety: all states are written before any fact
        is sent, so after a crash a contact either holds the whole batch (its
        replay re-sends the facts from its outbox, with the same identities) or
        none of it (processed again, giving the same identities); the queue stage
        drops what it has applied already.
        """
        partition, batch_offset = message.partition, message.offset
        try:
            batch = decode_batch(message.value)
        except (ValueError, KeyError, TypeError) as problem:
            log.error("skipping an unreadable message at %s[%d]@%d: %s", message.topic, partition,
                      batch_offset, problem)
            return
        base = batch_offset * POSITIONS_PER_BATCH
        events: list[tuple[int, ev.Event]] = []
        contact_ids: set[str] = set()
        agent_ids: set[str] = set()
        for index, record in enumerate(batch.records):
            try:
                event = parse_event(record.value)
            except InvalidEvent as problem:
                await self._dead_letter(record, partition, problem)
                continue
            events.append((index, event))
            if event.is_agent_event:
                agent_ids.add(event.agent_id)
            else:
                contact_ids.add(event.contact_id)
        # Every state this batch touches, read at once; changed in place, written once.
        contacts = self.contact_table.get_many(partition, contact_ids)
        agents = self.agent_table.get_many(partition, agent_ids)
        changed: dict[str, tuple[list[dict], list[dict]]] = {}  # contact -> (facts, records) of this batch
        replayed: set[str] = set()  # contacts whose stored state holds this batch already
        agents_written: set[str] = set()
        facts: list[dict] = []
        records: list[dict] = []
        processed: Counter = Counter()  # event type -> processed events (health counters, once per batch)
        late = 0
        for index, event in events:
            # Every event moves the partition's event time on, replayed and duplicate ones too (the
            # finally runs on continue): after a restart the replayed events are the ones the first
            # run processed, and without them the idle watermark stayed below the partition's
            # newest event, whose contact then never got its handle time (README: restarts).
            try:
                position = base + index
                if event.is_agent_event:
                    if self._on_agent_event(event, partition, position, agents, processed):
                        agents_written.add(event.agent_id)
                else:
                    contact_id = event.contact_id
                    if contact_id in replayed:
                        continue
                    outcome = lc.apply_event(contacts[contact_id], contact_id, event, position, partition,
                                             clock.stream_time_ms, self.limits, self.short_abandon_seconds)
                    contacts[contact_id] = outcome.state
                    if outcome.duplicate:
                        self.health.duplicate()
                        continue
                    if outcome.replay:
                        replayed.add(contact_id)
                        old_facts, old_records = self._outbox(outcome.state, f.SRC_INPUT, batch_offset)
                        facts += old_facts
                        records += old_records
                        continue
                    processed[event.type] += 1
                    if outcome.late:
                        late += 1
                    sent = self._stamp(outcome.facts, [f.SRC_INPUT, partition, batch_offset], index * FACTS_PER_EVENT)
                    mine = changed.setdefault(contact_id, ([], []))
                    mine[0].extend(sent)
                    mine[1].extend(outcome.records)
                    facts += sent
                    records += outcome.records
            finally:
                if event.occurred_at_ms > clock.stream_time_ms:
                    clock.stream_time_ms = event.occurred_at_ms
        clock.last_event_monotonic = time.monotonic()
        self.health.processed_batch(processed, late)
        contact_writes: dict[str, dict] = {}
        committed = self._committed_offsets(partition)
        for contact_id, (contact_facts, contact_records) in changed.items():
            state = contacts[contact_id]
            self._keep_in_outbox(state, f.SRC_INPUT, batch_offset, contact_facts, contact_records, committed)
            contact_writes[contact_id] = state
            self._index(partition, contact_id, state)
        for contact_id in replayed:
            # Written again: after a crash the local store can be ahead of the changelog
            # (RocksDB is written at once, Kafka later), and this brings the changelog level.
            contact_writes[contact_id] = contacts[contact_id]
        await self.contact_table.put_many(partition, contact_writes)
        agent_writes = {agent_id: agents[agent_id] for agent_id in agents_written}
        await self.agent_table.put_many(partition, agent_writes)
        self.agent_exports.update(agent_writes)
        clock.input_through = batch.last_offset
        facts.sort(key=lambda item: item["src"][3])  # re-sent and new facts in their first order
        await self._send_facts(facts)
        await self._send_records(records)
        self.health.observe_batch_latency(batch.forwarded_at_ms, len(batch.records), self.wall_clock_ms())

    async def _dead_letter(self, record: InputRecord, partition: int, problem: InvalidEvent) -> None:
        raw = record.value or b""
        out = dead_letter_record(
            raw=raw, reason=problem.reason, detail=problem.detail, topic=self.settings.input_topic,
            partition=partition, offset=record.offset, key=record.key, rejected_at_ms=self.wall_clock_ms())
        await self.produce(DEAD_LETTER_TOPIC, record.key, json_bytes.dumps(out))
        self.health.rejected(problem.reason)

    def _on_agent_event(self, event: ev.Event, partition: int, position: int, agents: dict[str, dict | None],
                        processed: Counter) -> bool:
        """Apply an agent event to its state in `agents`; True when the state is to be written.

        A processed event is counted in `processed` (by type).
        """
        agent_id = event.agent_id
        state, result = apply_agent_event(agents[agent_id], event, position)
        if result == "duplicate":
            self.health.duplicate()
            return False
        agents[agent_id] = state
        if result == "replay":
            return True  # written again, like a replayed contact (see _on_batch)
        state["p"] = partition
        processed[event.type] += 1
        return True

    @staticmethod
    def _stamp(facts: list[dict], src: list[int], base_index: int) -> list[dict]:
        source, partition, offset = src
        for i, item in enumerate(facts, base_index):
            item["src"] = [source, partition, offset, i]
        return facts

    async def _send_facts(self, facts: list[dict]) -> None:
        """One message per partition of the facts topic, holding each of its queues' facts in order."""
        by_partition: dict[int, dict[str, list[dict]]] = {}
        facts_topic = self.facts_topic.get_topic_name()
        for item in facts:
            key = f.queue_key(item["q"], item["c"])
            by_partition.setdefault(self.queue_partition(key), {}).setdefault(key, []).append(item)
        for partition, by_queue in by_partition.items():
            await self.produce(facts_topic, None, f.facts_message(by_queue), partition)

    async def _send_records(self, records: list[dict]) -> None:
        for record in records:
            await self.produce(OUTCOMES_TOPIC, record["contact_id"].encode(), json_bytes.dumps(outcome_record(record)))

    @staticmethod
    def _outbox(state: dict | None, source: int, offset: int) -> tuple[list[dict], list[dict]]:
        """What a replayed message sent the first time, when its state change is already in.

        Faust writes RocksDB at once but Kafka output later, so after a crash the local
        state can be ahead of what was delivered. Sending the output again is safe: the
        queue stage drops facts it has applied (by their high-water mark).
        """
        for entry in (state or {}).get("out") or ():
            if entry[0] == source and entry[1] == offset:
                return entry[2], entry[3]
        return [], []

    def _committed_offsets(self, partition: int) -> tuple[int, int]:
        """Faust's committed offsets of the input batches and ticks of `partition` (0 when none), by source."""
        committed = self.app.consumer._committed_offset  # by TP
        return (committed.get(TP(self.batch_topic.get_topic_name(), partition)) or 0,
                committed.get(TP(self.tick_topic.get_topic_name(), partition)) or 0)

    @staticmethod
    def _keep_in_outbox(state: dict, source: int, offset: int, facts: list[dict], records: list[dict],
                        committed: tuple[int, int]) -> None:
        """Remember this message's output until its offset is committed (then it is never replayed).

        `committed` is _committed_offsets of the message's partition, read once per message.
        """
        out = state.get("out")
        kept = [entry for entry in out if entry[1] >= committed[entry[0]]] if out else []
        if facts or records:
            kept.append([source, offset, facts, records])
        state["out"] = kept or None

    async def _on_tick(self, partition: int, offset: int, tick: dict) -> None:
        watermark, covered_offset = tick["w"], tick["o"]
        facts: list[dict] = []
        records: list[dict] = []
        states = self.contact_table.get_many(partition, tick["c"])
        writes: dict[str, dict | None] = {}  # None deletes
        committed = self._committed_offsets(partition)
        for position, contact_id in enumerate(tick["c"]):
            state = states[contact_id]
            if state is None:
                self._index(partition, contact_id, None)
                continue
            if state.get("tk", -1) >= offset:
                old_facts, old_records = self._outbox(state, f.SRC_TICK, offset)
                facts += old_facts
                records += old_records
                writes[contact_id] = state  # written again, like a replayed batch (see _on_batch)
                continue
            outcome = lc.finalize(state, contact_id, watermark, self.limits, self.short_abandon_seconds,
                                  covered_offset)
            sent = self._stamp(outcome.facts, [f.SRC_TICK, partition, offset], position * TICK_POSITION_STRIDE)
            if outcome.state is None:
                writes[contact_id] = states[contact_id] = None
                self._index(partition, contact_id, None)
            else:
                state["tk"] = offset
                self._keep_in_outbox(state, f.SRC_TICK, offset, sent, outcome.records, committed)
                writes[contact_id] = state
                self._index(partition, contact_id, state)
            facts += sent
            records += outcome.records
        await self.contact_table.put_many(partition, writes)
        await self._send_facts(facts)
        await self._send_records(records)

    # ----- sweep: watermark ticks ----------------------------------------------------------

    def watermark_ms(self, clock: PartitionClock, now_monotonic: float) -> int:
        """No event before this time is expected any more (exclusive).

        Newest event time minus the skew, so an event exactly `skew` late still
        counts; an idle partition lets everything up to its newest event count as
        final. Never the wall clock: replaying old data (or re-reading an old file)
        must not make retention and timeouts elapse at once.
        """
        if now_monotonic - clock.last_event_monotonic >= self.settings.idle_finalize_seconds:
            return clock.stream_time_ms + 1
        return clock.stream_time_ms - self.limits.skew_ms

    async def _sweep(self) -> None:
        """Send a tick to the owned partitions of the next slot (each partition's every SWEEP_INTERVAL_SECONDS)."""
        if not self.ready or self.app.rebalancing:
            return
        self.sweep_slot = slot = (self.sweep_slot + 1) % SWEEP_SLOTS
        if slot == 0:
            await self.offsets.read_missing_again()
        now = time.monotonic()
        tick_topic = self.tick_topic.get_topic_name()
        for partition in sweep_slot_partitions(self.active_partitions(self.batch_topic.get_topic_name()), slot):
            clock = self.clocks.get(partition)
            if clock is None or (clock.stream_time_ms == 0 and not self.due[partition]
                                 and not self.tombstones[partition]):
                continue
            watermark = self.watermark_ms(clock, now)
            heap, due = self.heaps[partition], self.due[partition]
            ready: list[str] = []
            while heap and heap[0][0] <= watermark:
                at, contact_id = heapq.heappop(heap)
                if due.get(contact_id) == at:
                    due[contact_id] = -1  # re-indexed when the tick is processed
                    ready.append(contact_id)
            # Tombstones: a minute's list once the whole minute is due (deleted up to a minute late).
            buckets, bucket_heap = self.tombstones[partition], self.tombstone_heaps[partition]
            while bucket_heap and (bucket_heap[0] + 1) * TOMBSTONE_BUCKET_MS <= watermark + 1:
                ready += buckets.pop(heapq.heappop(bucket_heap))
            for start in range(0, len(ready), MAX_TICK_CONTACTS):
                chunk = ready[start:start + MAX_TICK_CONTACTS]
                # Through produce: a lost tick would leave its contacts marked as being finalised
                # (due -1) until their next event, so an undelivered one stops the worker, whose
                # restart indexes them again from the table.
                await self.produce(tick_topic, None, json_bytes.dumps(
                    {"w": watermark, "o": self.processed_input_offset(partition, clock), "c": chunk}), partition)

    # ----- queue aggregation agent ----------------------------------------------------------

    async def _queue_agent(self, stream) -> None:
        zone = self.config.zone
        async for event in stream.events():
            message = event.message
            if not self.offsets.in_order(message):
                await self.offsets.read_again(message.tp)
                continue
            try:
                by_queue = f.read_facts_message(message.key, message.value)
            except ValueError as problem:
                log.error("skipping an unreadable message at %s[%d]@%d: %s", message.topic, message.partition,
                          message.offset, problem)
                self.queue_applied[message.tp] = message.offset
                continue
            partition = message.partition
            # The newest state of every queue of an owned partition is in queue_exports (rebuilt
            # from the table after each recovery, changed in place here): no read and decode.
            missing = [key for key in by_queue if key not in self.queue_exports]
            stored = self.queue_table.get_many(partition, missing)
            dirty = self.queue_dirty[partition]
            for key, items in by_queue.items():
                state = self.queue_exports.get(key) or stored.get(key) or qs.new_queue_state()
                queue, _channel = f.split_queue_key(key)
                targets = self.config.targets_for(queue)
                changed = False
                for item in items:
                    changed |= qs.apply_fact(state, item, targets, zone, self.wait_edges)
                if changed:
                    state["p"] = partition
                    self.queue_exports[key] = state
                    dirty.add(key)
            self.queue_applied[message.tp] = message.offset

    async def _flush_queue_states(self) -> None:
        """Write the queue states changed since the last flush, then let Faust commit their facts.

        The queue agent changes states in memory (queue_exports, which /metrics and
        /queues read, so they are current at once) and this writes each changed queue
        once per QUEUE_FLUSH_INTERVAL_SECONDS, where it was written once per facts
        message. Faust commits a facts offset only once the state holding its effects
        has been handed to the producer (OffsetGuard.defer_commits), and flushes the
        producer before it commits; after a crash the facts not written are read again
        and applied to the restored states (their `hwm` skips any already in).
        """
        if not self.ready or self.app.rebalancing or not (self.queue_dirty or self.queue_applied):
            return
        generation = self.queue_generation
        dirty, self.queue_dirty = self.queue_dirty, defaultdict(set)
        applied, self.queue_applied = self.queue_applied, {}
        for partition, keys in dirty.items():
            if generation != self.queue_generation:
                return  # revoked meanwhile: recovery restores what was written, the rest is read again
            # put_many encodes the states before it awaits anything; a state the agent changes
            # after that is dirty again, and written by the next flush.
            await self.queue_table.put_many(partition, {key: self.queue_exports[key] for key in keys})
        if generation == self.queue_generation:
            self.offsets.durable(applied)

    async def _publish_queue_stats(self) -> None:
        from streams.queues.windows import snapshot

        if not self.ready:
            return
        now = self.wall_clock_ms()
        for key, state in self.owned_queue_states():
            queue, channel = f.split_queue_key(key)
            record = snapshot(queue, channel, state, now, self.config.zone, self.config.targets_for(queue),
                              self.limits.expiry_ms)
            await self.produce(QUEUE_STATS_TOPIC, key.encode(), json_bytes.dumps(record), must_deliver=False)


def _log_undelivered(delivered: asyncio.Future) -> None:
    if not delivered.cancelled() and delivered.exception() is not None:
        log.error("a message could not be delivered: %s", delivered.exception())


def sweep_slot_partitions(owned: set[int], slot: int) -> list[int]:
    """The partitions of `owned` whose tick goes in sweep slot `slot` (see SWEEP_SLOTS), in order."""
    return sorted(partition for partition in owned if partition % SWEEP_SLOTS == slot)


def outcome_record(record: dict) -> dict:
    """A contact-outcome record as the contract publishes it (times as RFC 3339, seconds)."""

    def at(ms):
        return format_ms(ms) if ms is not None else None

    wait_ms = record.get("wait_ms")
    return {
        "record": record["record"],
        "contact_id": record["contact_id"],
        "queue": record.get("queue"),
        "channel": record.get("channel"),
        "outcome": record.get("outcome"),
        "enqueued_at": at(record.get("enqueued_at_ms")),
        "left_queue_at": at(record.get("left_queue_at_ms")),
        "wait_seconds": wait_ms / 1000 if wait_ms is not None else None,
        "agent_id": record.get("agent_id"),
        "holds": record.get("holds", 0),
        "hold_seconds": record.get("hold_seconds", 0.0),
        "transfers": record.get("transfers", 0),
        "handle_seconds": record.get("handle_seconds"),
        "ended_at": at(record.get("ended_at_ms")),
    }
