"""Exact changelog end offsets for Faust's table recovery (the embedded broker reports them too low).

Faust restores a table by reading its changelog partitions up to the end offsets
ListOffsets(latest) reports (AIOKafkaConsumerThread._highwaters, the recovery's
highwaters). The embedded development broker (tansu 0.6) reports the base offset of
the partition's last record batch + 1 there, too low whenever that batch holds more
than one record: recovery then stopped early and lost state, or failed with
ConsistencyError. `install()`, called by `callpulse worker`, checks every non-zero
end offset hw by reading from hw - 1, and uses max(hw, last record offset + 1).
On Apache Kafka the read at hw - 1 returns just the last record, so the value is
unchanged: the check is harmless there and costs one short-lived consumer per recovery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.settings import Settings

log = logging.getLogger("callpulse")

# Longest wait for the last records of all partitions together; a partition still
# silent then keeps its reported end offset (and a warning says so).
DEADLINE_SECONDS = 5.0


async def exact_end_offsets(reported: Mapping, bootstrap_servers: str, security: Mapping | None = None,
                            deadline_seconds: float = DEADLINE_SECONDS) -> dict:
    """`reported` ({topic partition: end offset}) with every end offset raised to the partition's
    last record offset + 1. Keys may be Faust TPs or aiokafka TopicPartitions; they are kept."""
    exact = dict(reported)
    to_check = {TopicPartition(tp.topic, tp.partition): (tp, hw) for tp, hw in reported.items()
                if hw is not None and hw > 0}
    if not to_check:
        return exact
    # No group id: assign and seek only, never joins or commits anything.
    # auto_offset_reset="latest": should hw - 1 be gone already (retention), the
    # position jumps to the end and the reported value stands.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="latest", fetch_max_wait_ms=100,
                                client_id="callpulse-end-offsets", **(security or {}))
    await consumer.start()
    try:
        consumer.assign(list(to_check))
        for partition, (_, hw) in to_check.items():
            consumer.seek(partition, hw - 1)
        pending = set(to_check)
        deadline = time.monotonic() + deadline_seconds
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=100)
            for partition, records in batches.items():
                if records:
                    tp, hw = to_check[partition]
                    exact[tp] = max(exact[tp], records[-1].offset + 1)
                    pending.discard(partition)
            for partition in list(pending):
                # Past hw - 1 without a record (on Kafka: compacted away, or a transaction
                # marker): nothing beyond the reported end, which is then right.
                if await consumer.position(partition) >= to_check[partition][1]:
                    pending.discard(partition)
        corrected = sum(exact[tp] != hw for tp, hw in to_check.values())
        if corrected:
            log.info("raised the reported end offsets of %d of %d partitions to their last record + 1",
                     corrected, len(to_check))
        for partition in pending:
            log.warning("no record at offset %d of %s within %.0f s; keeping that end offset unchecked",
                        to_check[partition][1] - 1, partition, deadline_seconds)
    finally:
        await consumer.stop()
    return exact


def install(settings: Settings) -> None:
    """Make Faust's highwaters (its recovery targets) exact for the rest of this process.

    Only the transactional path (exactly_once, last stable offsets) is left as Faust has it.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._highwaters
    if getattr(original, "exact_end_offsets_patch", False):
        return

    async def _highwaters(self, partitions):
        highwaters = await original(self, partitions)
        if self.consumer.in_transaction:
            return highwaters
        try:
            return await exact_end_offsets(highwaters, settings.bootstrap_servers,
                                           settings.aiokafka_security())
        except Exception as problem:
            # Correct on Apache Kafka anyway; only the embedded broker's value may be low.
            log.warning("could not check the end offsets of %d partitions (%s); using them as reported",
                        len(highwaters), problem)
            return highwaters

    _highwaters.exact_end_offsets_patch = True
    AIOKafkaConsumerThread._highwaters = _highwaters
