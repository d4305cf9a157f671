"""The messages each benchmark sends: simulator traffic, latency markers and contacts left in flight."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import orjson

from streams.simulator import DEFAULT_QUEUES, SimulationSettings, generate

Message = tuple[bytes, bytes]  # (key, value) exactly as an external producer writes it

MARKER_QUEUE = "bench-latency"
# The simulator yields a little less than its nominal rate; ask for this much more time.
DURATION_MARGIN = 1.05


@dataclass(frozen=True)
class Traffic:
    """Simulated v1 events, one per message, and how many of each type."""

    messages: list[Message]
    types: Counter
    first_event_ms: int
    last_event_ms: int
    warmup: list[Message] = field(default_factory=list)  # events before the span, see simulated_traffic


def simulated_traffic(events: int, rate: float, seed: int, end_ms: int | None = None,
                      start_ms: int | None = None, warmup_seconds: float = 0.0) -> Traffic:
    """The first `events` events of a simulation at `rate`, without faults and without a drain.

    With `end_ms` the simulated span is placed to end about then (a backlog whose
    newest events are "now"); with `start_ms` it starts then (live traffic).
    With `warmup_seconds`, the events of the simulation's first seconds go to
    `warmup` instead, and the `events` after them to `messages`: the shift starts
    with most agents logging in, a burst of agent events (about 86,000 in the first
    10 s at 2,000 events/s) before the contacts' steady traffic.
    """
    margin = DURATION_MARGIN
    while True:
        duration_seconds = warmup_seconds + events / rate * margin
        begin_ms = start_ms if start_ms is not None else (end_ms or _now_ms()) - int(duration_seconds * 1000)
        warmup_end_ms = begin_ms + int(warmup_seconds * 1000)
        settings = SimulationSettings(seed=seed, rate=rate, duration_seconds=duration_seconds,
                                      start_ms=begin_ms, drain=False)
        warmup: list[Message] = []
        messages: list[Message] = []
        types: Counter = Counter()
        first_ms = last_ms = begin_ms
        for message in generate(settings):
            if message.occurred_at_ms < warmup_end_ms:
                warmup.append((message.key, message.value))
                continue
            if not messages:
                first_ms = message.occurred_at_ms
            messages.append((message.key, message.value))
            types[message.event["type"]] += 1
            last_ms = message.occurred_at_ms
            if len(messages) == events:
                return Traffic(messages, types, first_ms, last_ms, warmup)
        margin *= 1.2


def marker_message(run_id: str, index: int, occurred_at_ms: int) -> Message:
    """A `contact.queued` of its own contact into MARKER_QUEUE: moves the queue's queued counter by one."""
    contact_id = f"{MARKER_QUEUE}-{run_id}-{index}"
    event = {"event_id": contact_id, "type": "contact.queued", "occurred_at": occurred_at_ms,
             "contact_id": contact_id, "queue": MARKER_QUEUE, "channel": "voice"}
    return contact_id.encode(), orjson.dumps(event)


def queued_contacts(count: int, run_id: str, end_ms: int) -> list[Message]:
    """`count` distinct contacts that enter a queue and never leave it: all stay in flight.

    Queued one millisecond apart, ending at `end_ms`, spread over the simulator's queues.
    """
    queues = [profile.name for profile in DEFAULT_QUEUES]
    messages = []
    for index in range(count):
        contact_id = f"bench-inflight-{run_id}-{index}"
        event = {"event_id": contact_id, "type": "contact.queued", "occurred_at": end_ms - count + index,
                 "contact_id": contact_id, "queue": queues[index % len(queues)], "channel": "voice"}
        messages.append((contact_id.encode(), orjson.dumps(event)))
    return messages


def _now_ms() -> int:
    return int(time.time() * 1000)
