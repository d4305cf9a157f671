"""From simulated events to Kafka messages: encoding, emission order and injected faults.

The model yields events in event-time order. Here each becomes the exact
message a producer would send (key and JSON value), and on request the
stream is made as untidy as real ones: re-sent duplicates, events of a contact
sent after a later one of the same contact (never more than the skew late),
and malformed messages. Faults use their own random stream, so asking for them
does not change the simulated traffic itself.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import count
from random import Random

import orjson

from streams.contract.events import AGENT_STATE_CHANGED, MAX_OCCURRED_AT_MS
from streams.simulator.model import ContactCenterModel
from streams.simulator.settings import SimulationSettings

FAULT_DUPLICATE = "duplicate"  # a second copy (same key, same bytes) of an event already sent
FAULT_REORDERED = "reordered"  # an event sent after a later event of its contact
FAULT_MALFORMED = "malformed"  # a message that breaks the contract

# A re-sent duplicate follows its original by this much (a producer retry).
DUPLICATE_DELAY_SECONDS = (0.05, 2.0)
# How occurred_at is written (both forms are allowed by the contract): share of each form.
TIMESTAMP_INT_SHARE = 0.2
TIMESTAMP_PLUS_ONE_HOUR_SHARE = 0.2
# Unused reordering "owed" by events that had no eligible later event is carried at most this far.
_MAX_REORDER_DEBT = 20.0
_RECENT_CONTACT_KEYS = 64


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One Kafka message as a producer would send it at `emit_at_ms`.

    `event` is the decoded v1 event (None for a malformed message),
    `occurred_at_ms` its event time, `fault` says which injected fault this is
    (None, "duplicate", "reordered" or "malformed").
    """

    key: bytes | None
    value: bytes
    emit_at_ms: int
    event: dict | None
    occurred_at_ms: int | None = None
    fault: str | None = None


class _TimestampWriter:
    """RFC 3339 strings (UTC "Z" or "+01:00") and epoch-ms integers, mixed but deterministic."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._utc_second = -1
        self._utc_prefix = ""
        self._plus_one_second = -1
        self._plus_one_prefix = ""

    def __call__(self, epoch_ms: int) -> str | int:
        draw = self._rng.random()
        if draw < TIMESTAMP_INT_SHARE:
            return epoch_ms
        second, millis = divmod(epoch_ms, 1000)
        if draw < TIMESTAMP_INT_SHARE + TIMESTAMP_PLUS_ONE_HOUR_SHARE:
            if second != self._plus_one_second:
                self._plus_one_second = second
                self._plus_one_prefix = datetime.fromtimestamp(second + 3600, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S"
                )
            return f"{self._plus_one_prefix}.{millis:03d}+01:00"
        if second != self._utc_second:
            self._utc_second = second
            self._utc_prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._utc_prefix}.{millis:03d}Z"


def _malformed_value(rng: Random, event_id: str, occurred_at_ms: int, contact_id: str) -> bytes:
    """A message that breaks the contract in one of the ways real producers do."""
    base = {
        "event_id": event_id,
        "type": "contact.queued",
        "occurred_at": occurred_at_ms,
        "contact_id": contact_id,
        "queue": "support",
        "channel": "voice",
    }
    kind = rng.randrange(8)
    if kind == 0:  # cut off mid-message
        text = orjson.dumps(base)
        return text[: rng.randrange(1, len(text) - 1)]
    if kind == 1:  # not even text
        return bytes(
            rng.choice(b"\x00\x01\x7f\x80\xfe\xff\x02\x1b") for _ in range(rng.randrange(3, 24))
        )
    if kind == 2:  # a batch where a single event belongs
        return orjson.dumps([base])
    if kind == 3:
        return orjson.dumps(
            {**base, "type": rng.choice(["contact.teleported", "call.started", "CONTACT_QUEUED"])}
        )
    if kind == 4:
        missing = rng.choice(["event_id", "occurred_at", "queue", "channel", "contact_id"])
        return orjson.dumps({k: v for k, v in base.items() if k != missing})
    if kind == 5:
        return orjson.dumps({**base, "type": "contact.answered"})  # no agent_id
    if kind == 6:
        return orjson.dumps(
            {**base, "occurred_at": rng.choice(["2026-13-45T99:00:00Z", "yesterday"])}
        )
    return orjson.dumps({**base, "channel": rng.choice(["fax", "sms", ""])})


def generate(settings: SimulationSettings) -> Iterator[SimulatedMessage]:
    """The run's messages in emission order (non-decreasing `emit_at_ms`)."""
    model = ContactCenterModel(settings)
    stamps = _TimestampWriter(Random(f"{settings.seed}:timestamps"))
    dumps = orjson.dumps

    def encode(occurred_at_ms: int, key: str, event: dict) -> SimulatedMessage:
        event["occurred_at"] = stamps(occurred_at_ms)
        return SimulatedMessage(key.encode(), dumps(event), occurred_at_ms, event, occurred_at_ms)

    if not (settings.duplicate_ratio or settings.reorder_ratio or settings.malformed_ratio):
        for occurred_at_ms, key, event in model.events():
            yield encode(occurred_at_ms, key, event)
        return
    yield from _with_faults(settings, model, encode)


def _with_faults(
    settings: SimulationSettings,
    model: ContactCenterModel,
    encode: Callable[[int, str, dict], SimulatedMessage],
) -> Iterator[SimulatedMessage]:
    """Hold messages briefly so that faults can be placed among them.

    Messages wait in a queue ordered by [emit_at_ms, sequence, message]; an
    event moved behind a later one of its contact leaves its old entry behind
    with message None. Nothing is released before it is older than the skew,
    so an event can still be moved. Duplicates, sent later, wait in a heap.
    """
    rng = Random(f"{settings.seed}:faults")
    duplicate_ratio = settings.duplicate_ratio
    reorder_ratio = settings.reorder_ratio
    malformed_ratio = settings.malformed_ratio
    skew_ms = round(settings.reorder_max_skew_seconds * 1000)
    hold_ms = skew_ms if reorder_ratio else 0
    pending: deque[list] = deque()
    duplicates: list[tuple[int, int, SimulatedMessage]] = []
    sequence = count()
    latest_by_contact: dict[bytes, list] = {}
    recent_contacts: list[bytes] = []
    reorder_debt = 0.0
    malformed_count = 0

    def release(before_ms: int) -> Iterator[SimulatedMessage]:
        """Everything due before `before_ms`, in (emit_at_ms, sequence) order."""
        while True:
            if (
                duplicates
                and duplicates[0][0] < before_ms
                and (not pending or duplicates[0][:2] < (pending[0][0], pending[0][1]))
            ):
                yield heapq.heappop(duplicates)[2]
            elif pending and pending[0][0] < before_ms:
                entry = pending.popleft()
                message = entry[2]
                if message is None:
                    continue
                if message.fault is None and latest_by_contact.get(message.key) is entry:
                    del latest_by_contact[message.key]
                yield message
            else:
                return

    for occurred_at_ms, key, event in model.events():
        message = encode(occurred_at_ms, key, event)
        entry = [occurred_at_ms, next(sequence), message]
        pending.append(entry)
        if event["type"] != AGENT_STATE_CHANGED:
            if len(recent_contacts) < _RECENT_CONTACT_KEYS:
                recent_contacts.append(message.key)
            else:
                recent_contacts[entry[1] % _RECENT_CONTACT_KEYS] = message.key
            if reorder_ratio:
                reorder_debt = min(_MAX_REORDER_DEBT, reorder_debt + reorder_ratio)
                previous = latest_by_contact.get(message.key)
                if (
                    previous is not None
                    and previous[2] is not None
                    and occurred_at_ms - previous[2].occurred_at_ms <= skew_ms
                    and rng.random() < reorder_debt
                ):
                    reorder_debt -= 1
                    moved = replace(previous[2], emit_at_ms=occurred_at_ms, fault=FAULT_REORDERED)
                    previous[2] = None
                    pending.append([occurred_at_ms, next(sequence), moved])
                latest_by_contact[message.key] = entry
        if duplicate_ratio and rng.random() < duplicate_ratio:
            emit_at_ms = occurred_at_ms + round(rng.uniform(*DUPLICATE_DELAY_SECONDS) * 1000)
            duplicate = replace(message, emit_at_ms=emit_at_ms, fault=FAULT_DUPLICATE)
            heapq.heappush(duplicates, (emit_at_ms, next(sequence), duplicate))
        if malformed_ratio and rng.random() < malformed_ratio:
            malformed_count += 1
            key_bytes = rng.choice(recent_contacts) if recent_contacts else None
            event_id = f"m-{settings.seed}-{malformed_count}"
            contact_id = key_bytes.decode() if key_bytes else f"c-{settings.seed}-unknown"
            value = _malformed_value(rng, event_id, occurred_at_ms, contact_id)
            malformed = SimulatedMessage(
                key_bytes, value, occurred_at_ms, None, None, FAULT_MALFORMED
            )
            pending.append([occurred_at_ms, next(sequence), malformed])
        if pending[0][0] < occurred_at_ms - hold_ms or (
            duplicates and duplicates[0][0] < occurred_at_ms - hold_ms
        ):
            yield from release(occurred_at_ms - hold_ms)
    yield from release(MAX_OCCURRED_AT_MS * 2)
