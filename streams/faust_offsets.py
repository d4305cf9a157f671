"""Corrections to Faust's offset handling: agents see each partition in order, and nothing unprocessed is committed.

faust-streaming 0.15 can both skip messages and commit past them. Whole input
batches were lost this way when a worker was killed and restarted (the
SIGKILL test in tests/integration/test_simulated_traffic.py failed in about 1
run of 10; worker logs showed the sequence below on most restarts):

- Seeks race with the fetch. Recovery seeks each partition to its committed
  offset (and this module seeks uncommitted ones to their beginning) while
  Faust's fetch loop is still handing out records fetched before. One such
  record, say offset 2 after a seek to 1, moves Faust's read offset to 2, and
  the re-fetched offset 1 is then dropped as already read ("DROPPED MESSAGE
  ROFF" in `Consumer._drain_messages`). The agent never sees it.
- A stream skips a message fetched in an older consumer generation, or taken
  while the flow is suspended (rebalance, recovery), and acknowledges it
  anyway (`Stream._py_aiter`). Acknowledged, it can be committed.
- `Consumer._new_offset` commits over one missing message at the head: the
  committed offset is the next one to read, yet it only waits when
  `min(acked) - committed > 1`. With offset 1 dropped and 2 acknowledged
  after a commit of 1, it commits 3. It also counts offsets the fetch jumped
  over (`Consumer._gap`) as processed, though our own topics have no holes.

`OffsetGuard` closes these:

- acknowledgements of skipped messages are not recorded (`ack`);
- no commit goes past an offset not acknowledged, counting from the
  committed offset or, before the first commit, from where reading began
  (`_new_offset`);
- agents ask `in_order` for each message; on a gap they skip the message
  (whose acknowledgement is then not recorded either) and `read_again` seeks
  back to the first missing offset, so effects are applied in offset order.

It also lets an agent write its state less often than once per message: for a
topic given to `defer_commits`, no commit goes past the last offset the agent
declared `durable` (the queue agent writes each changed queue once a second).

Seeks go through `consumer.seek_wait`, which runs in the consumer's thread:
`consumer.seek` calls aiokafka from the event loop's thread while that thread
fetches, and crashed the fetcher (a KeyError in aiokafka's
`Fetcher.fetched_records`) when an agent sought back.

It wraps `consumer.ack`, `consumer._new_offset` and `consumer.perform_seek`
on the app's consumer instance and reads `_acked`, `_committed_offset`,
`_gap`, `_unacked_messages` and `_waiting_for_ack`: private Faust API, pinned
by tests/unit/test_faust_offsets.py; check it when upgrading Faust.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import faust
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

log = logging.getLogger("callpulse.offsets")

READ_AGAIN_INTERVAL_SECONDS = 1.0  # records fetched before a seek can still arrive after it
HELD_COMMIT_WARNING_SECONDS = 120.0


class OffsetGuard:
    """Keeps each agent's input in offset order and Faust's commits below the first unprocessed message."""

    def __init__(self, app: faust.App, is_stream_topic: Callable[[str], bool],
                 is_gapless_topic: Callable[[str], bool]) -> None:
        """`is_gapless_topic`: written without transactions or compaction, so every offset holds a message."""
        self.app = app
        self.is_stream_topic = is_stream_topic
        self.is_gapless_topic = is_gapless_topic
        # Per stream partition: where reading began after the last assignment (the head
        # for commits until Faust has a committed offset) and the offset an agent needs next.
        self.heads: dict[TP, int] = {}
        self.next_offsets: dict[TP, int] = {}
        self.missing_since: dict[TP, float] = {}  # partitions waiting for a missing offset: last seek
        # Messages an agent skipped, until their acknowledgement (refused: they come again).
        self.skipped: set[tuple[TP, int]] = set()
        self.refused_acks = 0  # acknowledgements of messages no agent processed
        self.held_commits = 0  # commits held back by an unprocessed message at the head
        self.held_since: dict[TP, tuple[float, float]] = {}  # held commits: (since, last warning)
        # Topics whose agent makes a message's effects durable some time after it is acknowledged
        # (defer_commits), and per partition the last offset whose effects are (durable).
        self.deferred_topics: set[str] = set()
        self.durable_through: dict[TP, int] = {}

    def install(self) -> None:
        consumer = self.app.consumer
        faust_ack, faust_new_offset, faust_seek = consumer.ack, consumer._new_offset, consumer.perform_seek

        def ack(message) -> bool:
            if self._processed_in_this_generation(message) and not self._skipped_by_agent(message):
                return faust_ack(message)
            # Still marked acknowledged, so Faust stops waiting for it (wait_empty on
            # a revocation), but its offset is not committable: it is read again.
            with ack_lock:
                if not message.acked:
                    message.acked = True
                    consumer._unacked_messages.discard(message)
                    self.refused_acks += 1
                notify(consumer._waiting_for_ack)
            return False

        def new_offset(tp: TP) -> int | None:
            if self.is_gapless_topic(tp.topic):
                consumer._gap.pop(tp, None)  # a jump in the fetch is a dropped message here
            if self._unprocessed_head(tp):
                self.held_commits += 1
                self._warn_if_held_long(tp)
                return None
            self.held_since.pop(tp, None)
            if tp.topic in self.deferred_topics:
                return self._new_offset_through(tp, self.durable_through.get(tp, -1), faust_new_offset)
            return faust_new_offset(tp)

        async def perform_seek() -> None:
            await faust_seek()
            await self._seek_uncommitted_to_beginning()

        consumer.ack = ack
        consumer._new_offset = new_offset
        consumer.perform_seek = perform_seek

    def defer_commits(self, topic: str) -> None:
        """Commit `topic`'s offsets only as far as `durable` says, not as far as they are acknowledged.

        For an agent that writes its state for many messages at once: it
        acknowledges each message when done with it, and calls `durable` once the
        state holding those messages' effects is written.
        """
        self.deferred_topics.add(topic)

    def durable(self, offsets: dict[TP, int]) -> None:
        """The effects of every message up to these offsets (inclusive) are in the changelog's producer."""
        for tp, offset in offsets.items():
            if offset > self.durable_through.get(tp, -1):
                self.durable_through[tp] = offset

    def forget_durable(self) -> None:
        """A rebalance starts: what is not durable yet is read again from the committed offsets."""
        self.durable_through.clear()

    def _new_offset_through(self, tp: TP, last: int, faust_new_offset: Callable[[TP], int | None]) -> int | None:
        """Faust's offset to commit for `tp`, counting only acknowledged offsets up to `last`.

        Faust takes the offsets it commits off its list of acknowledged ones, so
        the later ones are set aside meanwhile and put back for a later commit.
        """
        acked = self.app.consumer._acked.get(tp)
        later = [offset for offset in acked if offset > last] if acked else None
        if not later:
            return faust_new_offset(tp)
        acked[:] = [offset for offset in acked if offset <= last]
        try:
            return faust_new_offset(tp)
        finally:
            acked.extend(later)

    def _processed_in_this_generation(self, message) -> bool:
        generation = message.generation_id
        return ((generation is None or generation == self.app.consumer_generation_id)
                and self.app.flow_control.is_active())

    def _warn_if_held_long(self, tp: TP) -> None:
        """Commits held for minutes mean an offset never came back: say so (restarts replay from it)."""
        now = time.monotonic()
        first, warned = self.held_since.setdefault(tp, (now, now))
        if now - warned >= HELD_COMMIT_WARNING_SECONDS:
            self.held_since[tp] = (first, now)
            waiting_for = self.app.consumer._committed_offset.get(tp)
            log.warning("%s[%d]: nothing committed for %.0f s; offset %s has not been processed",
                        tp.topic, tp.partition, now - first,
                        waiting_for if waiting_for is not None else self.heads.get(tp))

    def _skipped_by_agent(self, message) -> bool:
        """Whether an agent skipped this very message (`in_order` said False); asked once, by its ack."""
        key = (message.tp, message.offset)
        if key in self.skipped:
            self.skipped.discard(key)
            return True
        return False

    def _unprocessed_head(self, tp: TP) -> bool:
        """Whether the lowest acknowledged offset of `tp` lies past the next one to commit."""
        consumer = self.app.consumer
        acked = consumer._acked.get(tp)
        if not acked:
            return False
        head = consumer._committed_offset.get(tp)
        if head is None:
            head = self.heads.get(tp)
        if head is None:
            return False
        lowest = min(acked)
        gaps = consumer._gap.get(tp)
        if gaps:  # offsets the fetch skipped (compaction, transaction markers) count as processed
            lowest = min(lowest, gaps.begin())
        return lowest > head

    async def _seek_uncommitted_to_beginning(self) -> None:
        """After Faust's seek to the committed offsets, send partitions without one to their beginning.

        Faust only seeks partitions that have a committed offset; meanwhile its
        fetcher may have read (and dropped, while recovery runs) records of a
        partition with none, so a worker that crashed before its first commit
        would resume at the end and skip everything it had not committed. The
        beginning (the earliest offset retention kept) is what
        auto_offset_reset=earliest means; replayed events are recognised by
        their positions.
        """
        consumer = self.app.consumer
        committed = consumer._committed_offset
        stream_tps = [tp for tp in consumer.assignment() if self.is_stream_topic(tp.topic)]
        uncommitted = [tp for tp in stream_tps if not committed.get(tp)]
        beginnings: dict[TP, int] = {}
        if uncommitted:  # seek_wait runs in the consumer's thread: consumer.seek races with its fetch
            beginnings = await consumer.earliest_offsets(*uncommitted)
            await consumer.seek_wait({tp: beginnings.get(tp) or 0 for tp in uncommitted})
        self.heads = {tp: committed.get(tp) or beginnings.get(tp) or 0 for tp in stream_tps}
        self.next_offsets = dict(self.heads)
        self.missing_since.clear()
        self.skipped.clear()  # their acknowledgements, if still to come, are refused: the flow is suspended

    def in_order(self, message) -> bool:
        """Whether `message` is the next one of its partition, or an earlier one read again.

        False: messages before it never reached the agent. Skip it and call
        `read_again`; it comes back after them, and its acknowledgement (the
        stream's, after the skip) is not recorded. Call once per message.
        """
        tp = message.tp
        expected = self.next_offsets.get(tp)
        if expected is not None and message.offset > expected:
            # Not committable: a commit before it comes again would pass over it.
            self.skipped.add((tp, message.offset))
            return False
        self.next_offsets[tp] = max(expected or 0, message.offset + 1)
        self.missing_since.pop(tp, None)
        return True

    async def read_again(self, tp: TP) -> None:
        """Seek `tp` back to the first offset its agent has not seen (at most once per interval).

        If retention deleted that offset meanwhile, reading goes on from the
        earliest one left, with an error: those messages are gone.
        """
        consumer = self.app.consumer
        if tp not in consumer.assignment():  # revoked meanwhile: its next owner reads it
            self.missing_since.pop(tp, None)
            return
        now = time.monotonic()
        if now - self.missing_since.get(tp, float("-inf")) < READ_AGAIN_INTERVAL_SECONDS:
            return
        self.missing_since[tp] = now
        expected = self.next_offsets[tp]
        earliest = (await consumer.earliest_offsets(tp)).get(tp) or 0
        if earliest > expected:
            log.error("%s[%d]: offsets %d to %d were deleted (retention) before they were processed",
                      tp.topic, tp.partition, expected, earliest - 1)
            expected = self.next_offsets[tp] = earliest
        log.info("%s[%d]: offset %d never reached the agent; reading again from it",
                 tp.topic, tp.partition, expected)
        await consumer.seek_wait({tp: expected})

    async def read_missing_again(self) -> None:
        """Seek again the partitions still waiting for a missing offset (the seek can lose the race too)."""
        for tp in list(self.missing_since):
            await self.read_again(tp)
