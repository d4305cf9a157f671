"""The v1 input contract: parse and validate one raw Kafka message into an Event.

The committed JSON Schema (schemas/contact-event.v1.json) states the same rules
for other producers; tests check that both agree. Parsing is hand-written
rather than schema-driven because it runs once per input message on the hot
path and must say precisely what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import orjson

CONTACT_QUEUED = "contact.queued"
CONTACT_ANSWERED = "contact.answered"
CONTACT_ABANDONED = "contact.abandoned"
CONTACT_CALLBACK_REQUESTED = "contact.callback_requested"
CONTACT_HOLD_STARTED = "contact.hold_started"
CONTACT_HOLD_ENDED = "contact.hold_ended"
CONTACT_TRANSFERRED = "contact.transferred"
CONTACT_ENDED = "contact.ended"
CONTACT_WRAPUP_ENDED = "contact.wrapup_ended"
CHAT_MESSAGE = "chat.message"
AGENT_STATE_CHANGED = "agent.state_changed"

EVENT_TYPES: tuple[str, ...] = (
    CONTACT_QUEUED,
    CONTACT_ANSWERED,
    CONTACT_ABANDONED,
    CONTACT_CALLBACK_REQUESTED,
    CONTACT_HOLD_STARTED,
    CONTACT_HOLD_ENDED,
    CONTACT_TRANSFERRED,
    CONTACT_ENDED,
    CONTACT_WRAPUP_ENDED,
    CHAT_MESSAGE,
    AGENT_STATE_CHANGED,
)
_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
CHANNELS = ("voice", "chat")
TRANSFER_TYPES = ("blind", "warm", "external")
DISCONNECTED_BY = ("customer", "agent", "system")
SENDERS = ("customer", "agent")
AGENT_STATES = ("available", "on_contact", "after_contact_work", "unavailable", "offline")

# Values of callpulse_events_rejected_total{reason}: a closed set, so the label stays bounded.
REJECT_NOT_JSON = "not_json"
REJECT_NOT_OBJECT = "not_object"
REJECT_UNKNOWN_TYPE = "unknown_type"
REJECT_MISSING_FIELD = "missing_field"
REJECT_INVALID_FIELD = "invalid_field"
REJECT_INVALID_TIMESTAMP = "invalid_timestamp"
REJECT_REASONS = (
    REJECT_NOT_JSON,
    REJECT_NOT_OBJECT,
    REJECT_UNKNOWN_TYPE,
    REJECT_MISSING_FIELD,
    REJECT_INVALID_FIELD,
    REJECT_INVALID_TIMESTAMP,
)

# Event times outside this range are "impossible": before 2000-01-01 or after 2100-01-01.
MIN_OCCURRED_AT_MS = 946_684_800_000
MAX_OCCURRED_AT_MS = 4_102_444_800_000
MAX_ID_LENGTH = 256


class InvalidEvent(ValueError):
    """A message that breaks the contract; `reason` is the metric label, `detail` the why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True, frozen=True)
class Event:
    """One validated v1 event; `occurred_at_ms` is event time in epoch milliseconds."""

    event_id: str
    type: str
    occurred_at_ms: int
    contact_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    channel: str | None = None
    transfer_type: str | None = None
    to_queue: str | None = None
    disconnected_by: str | None = None
    sender: str | None = None
    state: str | None = None
    queues: tuple[str, ...] | None = None

    @property
    def is_agent_event(self) -> bool:
        return self.type == AGENT_STATE_CHANGED

    @property
    def partition_key(self) -> str:
        """The Kafka message key the contract prescribes for this event."""
        return (self.agent_id if self.is_agent_event else self.contact_id) or ""

    def to_json(self) -> dict:
        """The v1 JSON form (occurred_at as RFC 3339 UTC with milliseconds)."""
        out: dict = {"event_id": self.event_id, "type": self.type, "occurred_at": format_ms(self.occurred_at_ms)}
        for name in ("contact_id", "agent_id", "queue", "channel", "transfer_type", "to_queue",
                     "disconnected_by", "sender", "state"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.queues is not None:
            out["queues"] = list(self.queues)
        return out


# Event's generated __init__ sets each of the 13 fields with object.__setattr__ (it is frozen),
# which costs more than all of the validation; the parser fills the slots through their own
# setters instead. Same object, about half the cost.
_set_event_id = Event.event_id.__set__
_set_type = Event.type.__set__
_set_occurred_at_ms = Event.occurred_at_ms.__set__
_set_contact_id = Event.contact_id.__set__
_set_agent_id = Event.agent_id.__set__
_set_queue = Event.queue.__set__
_set_channel = Event.channel.__set__
_set_transfer_type = Event.transfer_type.__set__
_set_to_queue = Event.to_queue.__set__
_set_disconnected_by = Event.disconnected_by.__set__
_set_sender = Event.sender.__set__
_set_state = Event.state.__set__
_set_queues = Event.queues.__set__


def _new_event(event_id: str, type: str, occurred_at_ms: int, contact_id: str | None, agent_id: str | None,
               queue: str | None, channel: str | None, transfer_type: str | None, to_queue: str | None,
               disconnected_by: str | None, sender: str | None, state: str | None,
               queues: tuple[str, ...] | None) -> Event:
    """Event(...) from already validated values of every field."""
    event = object.__new__(Event)
    _set_event_id(event, event_id)
    _set_type(event, type)
    _set_occurred_at_ms(event, occurred_at_ms)
    _set_contact_id(event, contact_id)
    _set_agent_id(event, agent_id)
    _set_queue(event, queue)
    _set_channel(event, channel)
    _set_transfer_type(event, transfer_type)
    _set_to_queue(event, to_queue)
    _set_disconnected_by(event, disconnected_by)
    _set_sender(event, sender)
    _set_state(event, state)
    _set_queues(event, queues)
    return event


def format_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC, e.g. 2026-11-22T08:00:00.000Z."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_format_second(seconds)}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # Outcome records format several times per contact, mostly recent seconds: strftime is most of the cost.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_occurred_at(value: object) -> int:
    """RFC 3339 string with offset, or integer epoch milliseconds, to epoch milliseconds.

    Strings must match RFC 3339 exactly (the JSON Schema "date-time" format), not
    the wider ISO 8601 that datetime.fromisoformat accepts; digits beyond
    milliseconds are truncated. A number counts as an integer when its value is
    one (1.7e12 is 1700000000000), as JSON and JSON Schema define it.
    """
    if isinstance(value, str):
        epoch_ms = _rfc3339_to_ms(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        epoch_ms = value
    elif isinstance(value, float) and value.is_integer():
        epoch_ms = int(value)
    else:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, "occurred_at must be an RFC 3339 string or epoch milliseconds")
    if not MIN_OCCURRED_AT_MS <= epoch_ms < MAX_OCCURRED_AT_MS:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"occurred_at {str(value)[:64]!r} is outside 2000-2100")
    return epoch_ms


# RFC 3339 section 5.6 date-time with field ranges; ASCII digits, "T" and "Z" in either case.
# Only the day of the month is left to datetime (February 29th, 30th of April...). The date and
# time part is always 19 characters; the rest is the fraction (group 1) and the offset (group 2).
_DATE_TIME_PATTERN = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
)
_FRACTION_AND_OFFSET_PATTERN = r"(?:\.([0-9]+))?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_RFC3339 = re.compile(_DATE_TIME_PATTERN + _FRACTION_AND_OFFSET_PATTERN)
_DATE_TIME = re.compile(_DATE_TIME_PATTERN)
_FRACTION_AND_OFFSET = re.compile(_FRACTION_AND_OFFSET_PATTERN)
_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()
# Longest timestamp parsed through the caches below (nanoseconds and an offset); longer
# ones are valid too, but are not kept in memory.
_CACHED_LENGTH = len("2026-11-22T08:00:00.000000000+01:00")


def _rfc3339_to_ms(value: str) -> int:
    if len(value) <= _CACHED_LENGTH:
        # Events arrive roughly in time order, so both halves of a timestamp were nearly
        # always seen just before: two cache lookups instead of a regex and date arithmetic.
        try:
            return _date_time_ms(value[:19]) + _fraction_and_offset_ms(value[19:])
        except ValueError:
            pass  # not a valid timestamp: say why below
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"occurred_at {value[:64]!r} is not RFC 3339 with an offset")
    try:
        date_time_ms = _date_time_ms(value[:19])
    except ValueError:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"occurred_at {value[:64]!r} is not a calendar date") from None
    return date_time_ms + _fraction_and_offset_to_ms(*match.groups())


@lru_cache(maxsize=4096)
def _date_time_ms(date_time: str) -> int:
    """"YYYY-MM-DDTHH:MM:SS" as epoch milliseconds, as if it were UTC.

    ValueError if it does not match, or names a day that does not exist (or year 0).
    """
    if _DATE_TIME.fullmatch(date_time) is None:
        raise ValueError(date_time)
    day = datetime(int(date_time[0:4]), int(date_time[5:7]), int(date_time[8:10])).toordinal()
    seconds = int(date_time[11:13]) * 3600 + int(date_time[14:16]) * 60 + int(date_time[17:19])
    return ((day - _EPOCH_ORDINAL) * 86_400 + seconds) * 1_000


@lru_cache(maxsize=4096)
def _fraction_and_offset_ms(rest: str) -> int:
    """What the rest of a timestamp after its seconds adds, in ms; ValueError if it does not match."""
    match = _FRACTION_AND_OFFSET.fullmatch(rest)
    if match is None:
        raise ValueError(rest)
    return _fraction_and_offset_to_ms(*match.groups())


def _fraction_and_offset_to_ms(fraction: str | None, offset: str) -> int:
    """The milliseconds of the fraction (further digits are truncated) minus the UTC offset."""
    ms = int(fraction[:3].ljust(3, "0")) if fraction else 0
    if offset in ("Z", "z"):
        return ms
    offset_ms = (int(offset[1:3]) * 60 + int(offset[4:6])) * 60_000
    return ms - offset_ms if offset[0] == "+" else ms + offset_ms


def _preview(value: object) -> str:
    """A short rendering of a rejected value; repr() of deeply nested JSON would recurse."""
    if isinstance(value, str):
        return repr(value[:64])
    return "a JSON " + _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


_JSON_TYPE_NAMES = {dict: "object", list: "array", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _string(obj: dict, name: str, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{name} is required for {obj.get('type')}")
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(REJECT_INVALID_FIELD, f"{name} must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def _choice(obj: dict, name: str, choices: tuple[str, ...], required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{name} is required for {obj.get('type')}")
        return None
    if value not in choices:
        raise InvalidEvent(REJECT_INVALID_FIELD, f"{name} must be one of {', '.join(choices)}, not {_preview(value)}")
    return value


def parse_event(raw: bytes | str) -> Event:
    """Parse one Kafka message value; raise InvalidEvent naming what is wrong."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(REJECT_NOT_JSON, f"not valid UTF-8 JSON: {exc}") from None
    return event_from_dict(obj)


def event_from_dict(obj: object) -> Event:
    """Validate an already decoded JSON value as a v1 event."""
    if not isinstance(obj, dict):
        raise InvalidEvent(REJECT_NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    event_type = obj.get("type")
    if event_type is None:
        raise InvalidEvent(REJECT_MISSING_FIELD, "type is required")
    if not isinstance(event_type, str) or event_type not in _EVENT_TYPE_SET:
        raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"unknown type {_preview(event_type)}")
    event_id = _string(obj, "event_id", True)
    occurred_at = obj.get("occurred_at")
    if occurred_at is None:
        raise InvalidEvent(REJECT_MISSING_FIELD, "occurred_at is required")
    occurred_at_ms = parse_occurred_at(occurred_at)

    # The fields are checked in the order below: it decides which problem is reported when
    # several fields are wrong.
    if event_type == AGENT_STATE_CHANGED:
        queues = obj.get("queues")
        if queues is not None:
            if not isinstance(queues, list) or not all(isinstance(q, str) and q for q in queues):
                raise InvalidEvent(REJECT_INVALID_FIELD, "queues must be a list of queue names")
            queues = tuple(queues)
        agent_id = _string(obj, "agent_id", True)
        contact_id = _string(obj, "contact_id", False)
        state = _choice(obj, "state", AGENT_STATES, True)
        return _new_event(event_id, event_type, occurred_at_ms, contact_id, agent_id, None, None, None, None,
                          None, None, state, queues)

    queued = event_type == CONTACT_QUEUED
    contact_id = _string(obj, "contact_id", True)
    queue = _string(obj, "queue", queued)
    channel = _choice(obj, "channel", CHANNELS, queued)
    agent_id = _string(obj, "agent_id", event_type == CONTACT_ANSWERED)
    transfer_type = _choice(obj, "transfer_type", TRANSFER_TYPES, event_type == CONTACT_TRANSFERRED)
    to_queue = _string(obj, "to_queue", False)
    disconnected_by = _choice(obj, "disconnected_by", DISCONNECTED_BY, False)
    sender = _choice(obj, "sender", SENDERS, event_type == CHAT_MESSAGE)
    return _new_event(event_id, event_type, occurred_at_ms, contact_id, agent_id, queue, channel, transfer_type,
                      to_queue, disconnected_by, sender, None, None)
