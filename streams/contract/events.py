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


def format_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC, e.g. 2026-11-22T08:00:00.000Z."""
    seconds, millis = divmod(epoch_ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def parse_occurred_at(value: object) -> int:
    """RFC 3339 string with offset, or integer epoch milliseconds, to epoch milliseconds.

    Strings must match RFC 3339 exactly (the JSON Schema "date-time" format), not
    the wider ISO 8601 that datetime.fromisoformat accepts; digits beyond
    milliseconds are truncated. A number counts as an integer when its value is
    one (1.7e12 is 1700000000000), as JSON and JSON Schema define it.
    """
    if isinstance(value, bool):
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, "occurred_at must be an RFC 3339 string or epoch milliseconds")
    if isinstance(value, int):
        epoch_ms = value
    elif isinstance(value, float) and value.is_integer():
        epoch_ms = int(value)
    elif isinstance(value, str):
        epoch_ms = _rfc3339_to_ms(value)
    else:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, "occurred_at must be an RFC 3339 string or epoch milliseconds")
    if not MIN_OCCURRED_AT_MS <= epoch_ms < MAX_OCCURRED_AT_MS:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"occurred_at {str(value)[:64]!r} is outside 2000-2100")
    return epoch_ms


# RFC 3339 section 5.6 date-time with field ranges; ASCII digits, "T" and "Z" in either case.
# Only the day of the month is left to datetime (February 29th, 30th of April...).
_RFC3339 = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _rfc3339_to_ms(value: str) -> int:
    if _RFC3339.fullmatch(value) is None:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"occurred_at {value[:64]!r} is not RFC 3339 with an offset")
    try:
        parsed = datetime.fromisoformat(value if value[10] == "T" and value[-1] != "z" else value.upper())
    except ValueError:
        raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"occurred_at {value[:64]!r} is not a calendar date") from None
    # Whole seconds from the float timestamp are exact; milliseconds come from the integer field.
    return int(parsed.timestamp()) * 1_000 + parsed.microsecond // 1_000


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
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"unknown type {_preview(event_type)}")
    event_id = _string(obj, "event_id", True)
    if "occurred_at" not in obj or obj["occurred_at"] is None:
        raise InvalidEvent(REJECT_MISSING_FIELD, "occurred_at is required")
    occurred_at_ms = parse_occurred_at(obj["occurred_at"])

    if event_type == AGENT_STATE_CHANGED:
        queues = obj.get("queues")
        if queues is not None:
            if not isinstance(queues, list) or not all(isinstance(q, str) and q for q in queues):
                raise InvalidEvent(REJECT_INVALID_FIELD, "queues must be a list of queue names")
            queues = tuple(queues)
        return Event(
            event_id=event_id,
            type=event_type,
            occurred_at_ms=occurred_at_ms,
            agent_id=_string(obj, "agent_id", True),
            contact_id=_string(obj, "contact_id", False),
            state=_choice(obj, "state", AGENT_STATES, True),
            queues=queues,
        )

    queued = event_type == CONTACT_QUEUED
    return Event(
        event_id=event_id,
        type=event_type,
        occurred_at_ms=occurred_at_ms,
        contact_id=_string(obj, "contact_id", True),
        queue=_string(obj, "queue", queued),
        channel=_choice(obj, "channel", CHANNELS, queued),
        agent_id=_string(obj, "agent_id", event_type == CONTACT_ANSWERED),
        transfer_type=_choice(obj, "transfer_type", TRANSFER_TYPES, event_type == CONTACT_TRANSFERRED),
        to_queue=_string(obj, "to_queue", False),
        disconnected_by=_choice(obj, "disconnected_by", DISCONNECTED_BY, False),
        sender=_choice(obj, "sender", SENDERS, event_type == CHAT_MESSAGE),
    )
