"""The v1 input contract: what parse_event accepts, what it rejects and why, and that the JSON Schema agrees."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from streams.contract.events import (
    EVENT_TYPES,
    MAX_OCCURRED_AT_MS,
    MIN_OCCURRED_AT_MS,
    REJECT_INVALID_FIELD,
    REJECT_INVALID_TIMESTAMP,
    REJECT_MISSING_FIELD,
    REJECT_NOT_JSON,
    REJECT_NOT_OBJECT,
    REJECT_UNKNOWN_TYPE,
    Event,
    InvalidEvent,
    parse_event,
    parse_occurred_at,
)
from streams.contract.schemas import validator

# 2026-11-22T08:00:00Z
T0_MS = 1_795_334_400_000
T0 = "2026-11-22T08:00:00Z"

VALID_EVENTS: dict[str, dict] = {
    "contact.queued": {"type": "contact.queued", "contact_id": "c-1", "queue": "support", "channel": "voice"},
    "contact.answered": {"type": "contact.answered", "contact_id": "c-1", "agent_id": "a-7"},
    "contact.abandoned": {"type": "contact.abandoned", "contact_id": "c-1"},
    "contact.callback_requested": {"type": "contact.callback_requested", "contact_id": "c-1"},
    "contact.hold_started": {"type": "contact.hold_started", "contact_id": "c-1"},
    "contact.hold_ended": {"type": "contact.hold_ended", "contact_id": "c-1"},
    "contact.transferred": {"type": "contact.transferred", "contact_id": "c-1", "transfer_type": "warm",
                            "to_queue": "billing"},
    "contact.ended": {"type": "contact.ended", "contact_id": "c-1", "disconnected_by": "customer"},
    "contact.wrapup_ended": {"type": "contact.wrapup_ended", "contact_id": "c-1"},
    "chat.message": {"type": "chat.message", "contact_id": "c-2", "sender": "agent"},
    "agent.state_changed": {"type": "agent.state_changed", "agent_id": "a-7", "state": "available",
                            "queues": ["support", "billing"]},
}


def event(event_type: str, occurred_at: object = T0, **changes: object) -> dict:
    """A valid event of `event_type`; a change of None deletes the field."""
    obj = {"event_id": "e-1", "occurred_at": occurred_at, **VALID_EVENTS[event_type]}
    for name, value in changes.items():
        if value is None:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def schema_accepts(obj: object) -> bool:
    return validator("contact-event.v1").is_valid(obj)


def assert_rejected(raw: bytes, reason: str) -> None:
    """parse_event rejects with `reason`, and the schema rejects the same value when it is JSON."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == reason, caught.value.detail
    assert caught.value.detail
    if reason != REJECT_NOT_JSON:
        assert not schema_accepts(orjson.loads(raw))


def test_every_event_type_has_an_example():
    assert set(VALID_EVENTS) == set(EVENT_TYPES)


@pytest.mark.parametrize("occurred_at", [T0, T0_MS], ids=["rfc3339", "epoch_ms"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_accepts_a_valid_event_of_every_type(event_type, occurred_at):
    obj = event(event_type, occurred_at)

    parsed = parse_event(orjson.dumps(obj))

    assert parsed.type == event_type
    assert parsed.event_id == "e-1"
    assert parsed.occurred_at_ms == T0_MS
    for name, value in VALID_EVENTS[event_type].items():
        assert getattr(parsed, name) == (tuple(value) if isinstance(value, list) else value)
    assert schema_accepts(obj)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_a_parsed_event_is_the_same_frozen_event_as_one_built_directly(event_type):
    obj = event(event_type, to_queue="billing", disconnected_by="agent", contact_id="c-9")
    parsed = parse_event(orjson.dumps(obj))
    fields = {f.name: getattr(parsed, f.name) for f in dataclasses.fields(Event)}

    built = Event(**fields)

    assert parsed == built and hash(parsed) == hash(built) and repr(parsed) == repr(built)
    assert fields["event_id"] == "e-1" and fields["occurred_at_ms"] == T0_MS
    assert dataclasses.replace(parsed, event_id="e-2").event_id == "e-2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.event_id = "e-2"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_unknown_extra_fields_are_ignored(event_type):
    obj = event(event_type, extra="anything", nested={"a": [1, 2.5, None]}, flag=True)

    assert parse_event(orjson.dumps(obj)) == parse_event(orjson.dumps(event(event_type)))
    assert schema_accepts(obj)


def test_optional_fields_may_be_null():
    obj = event("contact.ended", disconnected_by=None) | {"disconnected_by": None, "to_queue": None,
                                                          "agent_id": None, "channel": None}

    parsed = parse_event(orjson.dumps(obj))

    assert parsed.disconnected_by is None and parsed.channel is None
    assert schema_accepts(obj)


def test_fields_of_the_other_kind_of_event_are_ignored():
    agent_event = event("agent.state_changed", channel="sms", queue=42, sender="bot")
    contact_event = event("contact.abandoned", state="busy", queues="support")

    assert parse_event(orjson.dumps(agent_event)).channel is None
    assert parse_event(orjson.dumps(contact_event)).state is None
    assert schema_accepts(agent_event) and schema_accepts(contact_event)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_partition_key_is_the_contact_or_the_agent(event_type):
    parsed = parse_event(orjson.dumps(event(event_type)))

    assert parsed.partition_key == ("a-7" if event_type == "agent.state_changed" else parsed.contact_id)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"event_id": "e-1",}', b"NaN", b"[" * 2000 + b"]" * 2000],
    ids=["empty", "truncated", "text", "trailing_comma", "nan", "too_deep"],
)
def test_rejects_what_is_not_json(raw):
    assert_rejected(raw, REJECT_NOT_JSON)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"event_id": "e-\xc3\x28"}', b'{"event_id": "\xed\xa0\x80"}', b'"\\ud800"'],
    ids=["bad_start_byte", "bad_continuation", "encoded_surrogate", "lone_surrogate_escape"],
)
def test_rejects_invalid_utf8_as_not_json(raw):
    assert_rejected(raw, REJECT_NOT_JSON)


@pytest.mark.parametrize(
    "raw",
    [b"[]", orjson.dumps([event("contact.abandoned")]), b"42", b"1.5", b'"contact.queued"', b"null", b"true"],
    ids=["empty_array", "array_of_event", "integer", "float", "string", "null", "bool"],
)
def test_rejects_json_that_is_not_an_object(raw):
    assert_rejected(raw, REJECT_NOT_OBJECT)


@pytest.mark.parametrize("type_value", ["contact.teleported", "", "CONTACT.QUEUED", 42, ["contact.queued"], {}])
def test_rejects_unknown_type(type_value):
    assert_rejected(orjson.dumps(event("contact.abandoned", type=type_value)), REJECT_UNKNOWN_TYPE)


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("contact.abandoned", "event_id"),
        ("contact.abandoned", "type"),
        ("contact.abandoned", "occurred_at"),
        ("contact.abandoned", "contact_id"),
        ("contact.queued", "queue"),
        ("contact.queued", "channel"),
        ("contact.answered", "agent_id"),
        ("agent.state_changed", "agent_id"),
        ("agent.state_changed", "state"),
        ("contact.transferred", "transfer_type"),
        ("chat.message", "sender"),
    ],
)
@pytest.mark.parametrize("how", ["absent", "null"])
def test_rejects_missing_required_field(event_type, field, how):
    obj = event(event_type, **{field: None})
    if how == "null":
        obj[field] = None

    assert_rejected(orjson.dumps(obj), REJECT_MISSING_FIELD)


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("contact.abandoned", "event_id", 42),
        ("contact.abandoned", "event_id", ""),
        ("contact.abandoned", "event_id", "e" * 257),
        ("contact.abandoned", "contact_id", ["c-1"]),
        ("contact.abandoned", "contact_id", {"id": "c-1"}),
        ("contact.queued", "queue", 7),
        ("contact.queued", "queue", ""),
        ("contact.answered", "agent_id", True),
        ("contact.transferred", "to_queue", ""),
        ("agent.state_changed", "contact_id", 12),
        ("agent.state_changed", "queues", "support"),
        ("agent.state_changed", "queues", ["support", ""]),
        ("agent.state_changed", "queues", ["support", 3]),
    ],
)
def test_rejects_ill_typed_field(event_type, field, value):
    assert_rejected(orjson.dumps(event(event_type, **{field: value})), REJECT_INVALID_FIELD)


def test_accepts_ids_of_exactly_256_characters():
    obj = event("contact.abandoned", event_id="e" * 256, contact_id="ü" * 256)

    assert parse_event(orjson.dumps(obj)).contact_id == "ü" * 256
    assert schema_accepts(obj)


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("contact.queued", "channel", "sms"),
        ("contact.queued", "channel", "Voice"),
        ("contact.abandoned", "channel", "email"),
        ("contact.transferred", "transfer_type", "cold"),
        ("contact.ended", "disconnected_by", "bot"),
        ("chat.message", "sender", "system"),
        ("agent.state_changed", "state", "busy"),
        ("contact.queued", "channel", ["voice"]),
    ],
)
def test_rejects_value_outside_its_enumeration(event_type, field, value):
    assert_rejected(orjson.dumps(event(event_type, **{field: value})), REJECT_INVALID_FIELD)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-22T08:00:00",
        "2026-11-22T08:00:00.123",
        "2026-11-22",
        "2026-11-22 08:00:00Z",
        " 2026-11-22T08:00:00Z",
        "2026-11-22T08:00:00Z\n",
        "2026-11-22T08:00Z",
        "2026-11-22T08:00:00+0100",
        "2026-11-22T08:00:00+01",
        "2026-11-22T08:00:00+01:00:30",
        "2026-11-22T08:00:00,5Z",
        "2026-11-22T08:00:00.Z",
        "2026-W47-7T08:00:00Z",
        "20261122T080000Z",
        "2026-11-22T08:00:00UTC",
        "٢٠٢٦-11-22T08:00:00Z",
        "",
    ],
)
def test_rejects_timestamp_that_is_not_rfc3339_with_an_offset(occurred_at):
    assert_rejected(orjson.dumps(event("contact.abandoned", occurred_at)), REJECT_INVALID_TIMESTAMP)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-02-29T08:00:00Z",
        "2100-02-29T08:00:00Z",
        "2026-02-30T08:00:00Z",
        "2026-04-31T08:00:00Z",
        "2026-13-01T08:00:00Z",
        "2026-00-10T08:00:00Z",
        "2026-11-00T08:00:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T08:60:00Z",
        "2026-11-22T08:00:60Z",
        "2026-11-22T08:00:00+24:00",
        "2026-11-22T08:00:00-01:60",
    ],
)
def test_rejects_impossible_date_or_time(occurred_at):
    assert_rejected(orjson.dumps(event("contact.abandoned", occurred_at)), REJECT_INVALID_TIMESTAMP)


@pytest.mark.parametrize(
    "occurred_at",
    [
        MIN_OCCURRED_AT_MS - 1,
        MAX_OCCURRED_AT_MS,
        0,
        -T0_MS,
        T0_MS // 1000,
        2**63 - 1,
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
    ],
    ids=["before_2000", "at_2100", "zero", "negative", "epoch_seconds", "huge", "iso_before_2000", "iso_2100",
         "year_1"],
)
def test_rejects_timestamp_outside_2000_to_2100(occurred_at):
    assert_rejected(orjson.dumps(event("contact.abandoned", occurred_at)), REJECT_INVALID_TIMESTAMP)


@pytest.mark.parametrize(
    "occurred_at", [True, False, T0_MS + 0.5, str(T0_MS), [T0_MS], {"ms": T0_MS}],
    ids=["true", "false", "fractional_ms", "digits_string", "array", "object"],
)
def test_rejects_timestamp_of_the_wrong_type(occurred_at):
    assert_rejected(orjson.dumps(event("contact.abandoned", occurred_at)), REJECT_INVALID_TIMESTAMP)


@pytest.mark.parametrize(
    ("occurred_at", "epoch_ms"),
    [
        ("2026-11-22T08:00:00Z", T0_MS),
        ("2026-11-22T08:00:00+00:00", T0_MS),
        ("2026-11-22T08:00:00-00:00", T0_MS),
        ("2026-11-22t08:00:00z", T0_MS),
        ("2026-11-22T09:00:00+01:00", T0_MS),
        ("2026-11-22T13:30:00+05:30", T0_MS),
        ("2026-11-22T03:00:00-05:00", T0_MS),
        ("2026-11-21T23:00:00-09:00", T0_MS),
        ("2026-11-23T07:59:00+23:59", T0_MS),
        ("2026-11-22T08:00:00.5Z", T0_MS + 500),
        ("2026-11-22T08:00:00.123Z", T0_MS + 123),
        ("2026-11-22T08:00:00.123999999+00:00", T0_MS + 123),
        ("2026-11-22T09:00:00.123999999999+01:00", T0_MS + 123),
        ("2024-02-29T23:00:00+01:00", 1_709_244_000_000),
        ("2000-01-01T00:00:00Z", MIN_OCCURRED_AT_MS),
        ("2099-12-31T23:59:59.999Z", MAX_OCCURRED_AT_MS - 1),
    ],
)
def test_rfc3339_converts_to_epoch_ms_in_utc(occurred_at, epoch_ms):
    obj = event("contact.abandoned", occurred_at)

    assert parse_event(orjson.dumps(obj)).occurred_at_ms == epoch_ms
    assert schema_accepts(obj)


@pytest.mark.parametrize(
    ("occurred_at", "detail"),
    [
        ("2026-02-30T08:00:00Z", "is not a calendar date"),
        ("0000-01-01T08:00:00Z", "is not a calendar date"),
        ("2026-02-30T08:00:00+0100", "is not RFC 3339 with an offset"),
        ("2026-11-22T08:00:00.Z", "is not RFC 3339 with an offset"),
        ("2026-11-22T08:00:00.123456789012+0100", "is not RFC 3339 with an offset"),
        ("2026-02-30T08:00:00.123456789012+01:00", "is not a calendar date"),
    ],
)
def test_timestamp_rejection_says_whether_the_format_or_the_day_is_wrong(occurred_at, detail):
    with pytest.raises(InvalidEvent) as caught:
        parse_occurred_at(occurred_at)

    assert caught.value.reason == REJECT_INVALID_TIMESTAMP
    assert caught.value.detail == f"occurred_at {occurred_at!r} {detail}"


def test_timestamp_parsing_does_not_depend_on_the_timestamps_parsed_before():
    # Parsing keeps the halves of recent timestamps (date and time; fraction and offset):
    # these share one half with an earlier valid timestamp, or are too long to be kept.
    sequence = [
        ("2026-11-22T09:00:00.123+01:00", T0_MS + 123),
        ("2026-11-22T09:00:00.123+0100", None),
        ("2026-02-29T09:00:00.123+01:00", None),
        ("2026-11-22T09:00:00.5+01:00", T0_MS + 500),
        ("2026-11-22t08:00:00.123z", T0_MS + 123),
        ("2026-11-22T09:00:00.123456789012+01:00", T0_MS + 123),
        ("2026-11-22T09:00:00.123456789012+0100", None),
    ]
    for _ in range(2):
        for occurred_at, epoch_ms in sequence:
            if epoch_ms is None:
                with pytest.raises(InvalidEvent):
                    parse_occurred_at(occurred_at)
            else:
                assert parse_occurred_at(occurred_at) == epoch_ms, occurred_at


@pytest.mark.parametrize("occurred_at", [MIN_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS - 1, float(T0_MS), 1.7955344e12])
def test_accepts_epoch_ms_at_the_bounds_and_integral_floats(occurred_at):
    obj = event("contact.abandoned", occurred_at)

    assert parse_event(orjson.dumps(obj)).occurred_at_ms == int(occurred_at)
    assert schema_accepts(obj)


@pytest.mark.parametrize("field", ["type", "channel", "state"])
def test_deeply_nested_values_are_rejected_not_a_crash(field):
    obj = event("agent.state_changed" if field == "state" else "contact.queued")
    raw = orjson.dumps(obj)[:-1] + f',"{field}":'.encode() + b"[" * 1020 + b"]" * 1020 + b"}"

    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.reason in (REJECT_UNKNOWN_TYPE, REJECT_INVALID_FIELD)


def test_parse_event_accepts_text_as_well_as_bytes():
    obj = event("contact.queued")

    assert parse_event(orjson.dumps(obj).decode()) == parse_event(orjson.dumps(obj))


@pytest.mark.parametrize("occurred_at", [T0, "2026-11-22T09:30:00.250+01:30", T0_MS])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_to_json_round_trips_and_matches_the_schema(event_type, occurred_at):
    parsed = parse_event(orjson.dumps(event(event_type, occurred_at)))

    as_json = parsed.to_json()

    assert parse_event(orjson.dumps(as_json)) == parsed
    assert as_json["occurred_at"].endswith("Z")
    assert schema_accepts(as_json)


def test_to_json_leaves_out_absent_fields():
    parsed = Event(event_id="e-1", type="contact.abandoned", occurred_at_ms=T0_MS, contact_id="c-1")

    assert parsed.to_json() == {"event_id": "e-1", "type": "contact.abandoned",
                                "occurred_at": "2026-11-22T08:00:00.000Z", "contact_id": "c-1"}
