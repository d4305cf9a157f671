"""Facts: what the per-contact lifecycle tells the per-queue aggregation.

A fact is a small dict sent on the internal queue-facts topic to the partition of
its queue and channel (`queue_key`); one message carries the facts of every queue
of that partition from one lifecycle message (`facts_message`). Two families:

- gauge deltas (`g`): a contact started or stopped waiting, holding or being
  connected; sent as soon as the event arrives, so current-state gauges are live;
- outcome facts (everything else): sent once final, i.e. once the partition's
  watermark has passed their event time, so reordering within the skew cannot
  change them afterwards.

Every fact carries `src` = [source code, partition, offset, index], the identity
of the message whose processing produced it; the queue stage applies a fact
only if `src` is beyond what it has applied from that source (see queues.state).
"""

from __future__ import annotations

import orjson

from streams import json_bytes

GAUGE = "g"
ENQUEUED = "enq"
LEFT_QUEUE = "left"
HOLD_STARTED = "hs"
HOLD_ENDED = "he"
TRANSFERRED = "tr"
HANDLED = "ho"
FIRST_RESPONSE = "fr"
EXPIRED = "exp"

# Outcomes of leaving a queue, as the lifecycle decides them. The queue stage
# splits "abandoned" into abandoned/short_abandoned with the queue's threshold.
ANSWERED = "answered"
ABANDONED = "abandoned"
SHORT_ABANDONED = "short_abandoned"
CALLBACK = "callback"
QUEUE_TRANSFERRED = "transferred"
OUTCOME_EXPIRED = "expired"

# Source codes of `src`: which topic the producing message came from.
SRC_INPUT = 0
SRC_TICK = 1


def queue_key(queue: str, channel: str) -> str:
    """The Kafka key and table key of one queue and channel (channel never holds ':')."""
    return f"{channel}:{queue}"


def split_queue_key(key: str) -> tuple[str, str]:
    """Inverse of queue_key: (queue, channel)."""
    channel, _, queue = key.partition(":")
    return queue, channel


def facts_message(by_queue: dict[str, list[dict]]) -> bytes:
    """One facts message: {queue key: [facts in order]}, every key of one partition of the facts topic."""
    return json_bytes.dumps(by_queue)


def read_facts_message(key: bytes | None, value: bytes) -> dict[str, list[dict]]:
    """The facts of one facts message by queue key.

    Also reads the earlier layout (one message per queue: key = queue key, value =
    its facts), which a worker upgraded in place may still find in the topic.
    """
    payload = orjson.loads(value)
    if isinstance(payload, list):
        if key is None:
            raise ValueError("a one-queue facts message without its queue key")
        return {key.decode(): payload}
    if not isinstance(payload, dict):
        raise ValueError(f"not a facts message: {type(payload).__name__}")  # noqa: TRY004 (read errors are ValueError)
    return payload


def is_short_abandon(wait_ms: int, short_abandon_seconds: float) -> bool:
    """A short abandon waited strictly less than the threshold (exactly at it is a real abandon)."""
    return wait_ms < short_abandon_seconds * 1000


def classify_abandon(wait_ms: int, short_abandon_seconds: float) -> str:
    return SHORT_ABANDONED if is_short_abandon(wait_ms, short_abandon_seconds) else ABANDONED
