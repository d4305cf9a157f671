"""Shared by the platform converters: stable event ids, lenient timestamps, bounded state.

Everything here is pure: no clock, no I/O. A converter turns one native record
into v1 `Event`s by building plain dicts and passing them through the contract's
own `event_from_dict`, so a converter can never emit an event that the core
would dead-letter.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson

from streams.contract.events import (
    REJECT_INVALID_TIMESTAMP,
    REJECT_NOT_JSON,
    REJECT_NOT_OBJECT,
    Event,
    InvalidEvent,
    event_from_dict,
)

DEFAULT_MAX_ENTRIES = 100_000
"""Default bound of every converter's memory (contacts, agents, queue names)."""

# Epoch numbers at or above this are milliseconds (1e11 s is the year 5138, 1e11 ms is 1973).
_MS_THRESHOLD = 100_000_000_000
_EPOCH_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(Generic[K, V]):
    """A dict that forgets its least recently used entry beyond `max_entries`.

    >>> seen = BoundedDict[str, int](max_entries=2)
    >>> seen["a"] = 1; seen["b"] = 2; seen["c"] = 3
    >>> list(seen)
    ['b', 'c']

    Converters remember what their source format does not repeat (an agent's
    pause state, a queue's name). Forgetting an old entry costs a less precise
    event, never an unbounded process.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: V | None = None) -> V | None:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        return default

    def __setitem__(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._data.pop(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)


def stable_event_id(platform: str, source: bytes, index: int) -> str:
    """`platform:<96-bit sha1 prefix of source>:<index>`: same source, same id, on every replay."""
    return f"{platform}:{hashlib.sha1(source).hexdigest()[:24]}:{index}"


def fact_source(*parts: str) -> bytes:
    """The id source of a fact several native records can announce (e.g. one contact's end)."""
    return "\x1f".join(parts).encode("utf-8", "surrogateescape")


def canonical_json(obj: object) -> bytes:
    """Key-sorted compact JSON: the hash input for a JSON record, independent of key order."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def load_json(record: bytes | str) -> object:
    """Decode a JSON record or raise InvalidEvent(not_json)."""
    try:
        return orjson.loads(record)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(REJECT_NOT_JSON, f"not valid UTF-8 JSON: {exc}") from None


def require_object(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidEvent(REJECT_NOT_OBJECT, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def fold_key(name: str) -> str:
    """Field names compared without case, '_' or '-': contactId, ContactId, contact_id are one."""
    return name.lower().replace("_", "").replace("-", "")


def fold_keys(value: object) -> object:
    """`value` with every object key folded (recursively); values are left as they are."""
    if isinstance(value, dict):
        return {fold_key(str(k)): fold_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fold_keys(v) for v in value]
    return value


def epoch_ms(value: object, name: str) -> int:
    """A native timestamp to epoch milliseconds.

    Accepts ISO 8601 strings (with offset or Z; without one, UTC is assumed, as
    the platforms write UTC) and epoch numbers or digit strings in seconds or
    milliseconds, told apart by magnitude. Fractions of a millisecond are truncated.
    """
    if isinstance(value, bool) or value is None:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"{name} is not a timestamp")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"{name} {value!r} is not a timestamp")
        return int(value) if value >= _MS_THRESHOLD else int(value * 1000)
    if not isinstance(value, str):
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"{name} is not a timestamp")
    text = value.strip()
    if _EPOCH_TEXT.fullmatch(text):
        whole, _, fraction = text.partition(".")
        if int(whole) >= _MS_THRESHOLD:
            return int(whole)
        return int(whole) * 1000 + int(fraction[:3].ljust(3, "0"))
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"{name} {value[:64]!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    whole_seconds = int(parsed.replace(microsecond=0).timestamp())
    return whole_seconds * 1000 + parsed.microsecond // 1000


def first_present(fields: Mapping[str, object], *names: str) -> object | None:
    """The first of `names` whose value is present and not empty."""
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return value
    return None


def build_events(platform: str, drafts: list[tuple[bytes, dict]]) -> list[Event]:
    """Validate drafts against the v1 contract and give each its stable id.

    A draft is (id source, v1 fields without event_id); drafts sharing one id
    source are numbered by their order, so the ids stay stable as long as the
    converter's output for that source does.
    """
    events: list[Event] = []
    counters: dict[bytes, int] = {}
    for source, fields in drafts:
        index = counters.get(source, 0)
        counters[source] = index + 1
        obj = {"event_id": stable_event_id(platform, source, index)}
        obj.update((k, v) for k, v in fields.items() if v is not None)
        events.append(event_from_dict(obj))
    return events
