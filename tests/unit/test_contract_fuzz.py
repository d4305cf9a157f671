"""Property tests of the contract: the parser never crashes, agrees with the schemas, and derived records validate."""

from __future__ import annotations

import base64
from datetime import date

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streams.contract.dead_letter import dead_letter_record
from streams.contract.events import (
    AGENT_STATES,
    CHANNELS,
    DISCONNECTED_BY,
    EVENT_TYPES,
    MAX_ID_LENGTH,
    MAX_OCCURRED_AT_MS,
    MIN_OCCURRED_AT_MS,
    REJECT_REASONS,
    SENDERS,
    TRANSFER_TYPES,
    InvalidEvent,
    event_from_dict,
    format_ms,
    parse_event,
)
from streams.contract.schemas import SCHEMA_NAMES, load_schema, validator

# Deterministic and bounded: the whole file runs in about 15 seconds on a loaded laptop.
fuzz = settings(
    max_examples=250,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Derived records only need their shape covered, and are costly to generate.
records = settings(fuzz, max_examples=60)

text = st.text(st.characters(codec="utf-8"), max_size=12)
identifiers = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=12),
    st.sampled_from(["c-1", "a-7", "x" * MAX_ID_LENGTH, "ü" * MAX_ID_LENGTH]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
    | st.sampled_from(["", "x" * (MAX_ID_LENGTH + 1), *CHANNELS, *TRANSFER_TYPES, *DISCONNECTED_BY, *AGENT_STATES,
                       *EVENT_TYPES, "2026-11-22T08:00:00Z"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=6,
)


@st.composite
def rfc3339_timestamps(draw, days: st.SearchStrategy[date] = st.dates(date(2000, 1, 2), date(2099, 12, 30))) -> str:
    """A well-formed RFC 3339 string; by default on a day whose every offset keeps it inside 2000-2100."""
    day = draw(days)
    hour, minute, second = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    fraction = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=10).map(".".__add__)))
    offset = draw(st.one_of(
        st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
        st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)).map(
            lambda t: f"{t[0]}{t[1]:02d}:{t[2]:02d}"),
    ))
    separator = draw(st.sampled_from("Tt"))
    return f"{day.isoformat()}{separator}{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"


epoch_ms = st.integers(min_value=MIN_OCCURRED_AT_MS, max_value=MAX_OCCURRED_AT_MS - 1)
valid_timestamps = st.one_of(epoch_ms, epoch_ms.map(format_ms), rfc3339_timestamps())

REQUIRED = {
    "contact.queued": {"queue": identifiers, "channel": st.sampled_from(CHANNELS)},
    "contact.answered": {"agent_id": identifiers},
    "contact.transferred": {"transfer_type": st.sampled_from(TRANSFER_TYPES)},
    "chat.message": {"sender": st.sampled_from(SENDERS)},
    "agent.state_changed": {"agent_id": identifiers, "state": st.sampled_from(AGENT_STATES)},
}
CONTACT_OPTIONAL = {
    "queue": identifiers,
    "channel": st.sampled_from(CHANNELS),
    "agent_id": identifiers,
    "transfer_type": st.sampled_from(TRANSFER_TYPES),
    "to_queue": identifiers,
    "disconnected_by": st.sampled_from(DISCONNECTED_BY),
    "sender": st.sampled_from(SENDERS),
}
AGENT_OPTIONAL = {"contact_id": identifiers, "queues": st.lists(identifiers, max_size=3)}
FIELD_NAMES = sorted({"event_id", "type", "occurred_at", "contact_id", *CONTACT_OPTIONAL, *AGENT_OPTIONAL,
                      "state", "extra"})


@st.composite
def valid_events(draw) -> dict:
    """Any event the contract allows: required fields, some optional ones (maybe null), unknown extras."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    obj = {"event_id": draw(identifiers), "type": event_type, "occurred_at": draw(valid_timestamps)}
    optional = AGENT_OPTIONAL if event_type == "agent.state_changed" else CONTACT_OPTIONAL
    if event_type != "agent.state_changed":
        obj["contact_id"] = draw(identifiers)
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=3)):
        obj[name] = draw(st.none() | optional[name])
    for name, values in REQUIRED.get(event_type, {}).items():
        obj[name] = draw(values)
    obj.update(draw(st.dictionaries(st.sampled_from(["extra", "source", "version"]), json_values, max_size=2)))
    return obj


def changed_type(value: object) -> st.SearchStrategy:
    """Values of a different JSON type carrying the same information, the typical producer mistake."""
    if isinstance(value, str):
        return st.sampled_from([[value], {"value": value}, len(value), value.encode().hex(), value.upper()])
    if isinstance(value, int):
        return st.sampled_from([str(value), float(value), value + 0.5, value // 1000, value * 1000, [value], True])
    return st.sampled_from([str(value), None, [value]])


def two_digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map("{:02d}".format)


# The parts of an RFC 3339 timestamp, each as (valid values, near misses).
TIMESTAMP_PARTS = (
    (st.just(""), [" ", "\t", "\ufeff"]),
    (st.integers(2000, 2099).map(str), ["1999", "2100", "0000", "99", "20260", "２０２６", "+2026"]),
    (st.just("-"), ["/", ""]),
    (two_digits(1, 12), ["00", "13", "1", "001"]),
    (st.just("-"), ["/", ""]),
    (two_digits(1, 31), ["00", "32", "1", "29", "30", "31"]),
    (st.sampled_from("Tt"), [" ", "_", "", "TT"]),
    (two_digits(0, 23), ["24", "1", "٠٨"]),
    (st.just(":"), ["", "."]),
    (two_digits(0, 59), ["60", "5"]),
    (two_digits(0, 59).map(":".__add__), [":60", "", ":5", "60"]),
    (st.just("") | st.text("0123456789", min_size=1, max_size=10).map(".".__add__), [".", ",5", ".5.", ".x"]),
    (
        st.sampled_from(["Z", "z", "+00:00", "-00:00"])
        | st.builds("{}{}:{}".format, st.sampled_from("+-"), two_digits(0, 23), two_digits(0, 59)),
        ["", "+0100", "+01", "+24:00", "-01:60", "+01:00:30", "UTC", " Z", "+1:00", "Z+01:00", "\u2212" + "01:00"],
    ),
    (st.just(""), [" ", "\n", "Z", "\x00"]),
)


@st.composite
def loose_timestamps(draw) -> str:
    """A timestamp built part by part with at most one part a near miss: probes the grammar, not noise."""
    broken = draw(st.integers(-1, len(TIMESTAMP_PARTS) - 1))
    return "".join(
        draw(st.sampled_from(misses) if index == broken else valid)
        for index, (valid, misses) in enumerate(TIMESTAMP_PARTS)
    )


@st.composite
def mutated_timestamps(draw, value: object) -> object:
    """A timestamp near `value`: one character edited, a part-by-part near miss, or a number around the bounds."""
    if isinstance(value, int):
        return draw(st.one_of(
            st.sampled_from([MIN_OCCURRED_AT_MS - 1, MAX_OCCURRED_AT_MS, MAX_OCCURRED_AT_MS - 1, True, False,
                             -value, value // 1000, float(value), value + 0.5, float(MAX_OCCURRED_AT_MS), 2**63 - 1]),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
        ))
    text_value = str(value)
    position = draw(st.integers(0, len(text_value)))
    replacement = draw(st.sampled_from(list("0123456789-+:.TtZz ,/\n") + ["١", "", "60", "24", "+01:00", "99"]))
    edit = draw(st.sampled_from(["replace", "insert", "truncate", "loose", "loose"]))
    if edit == "replace":
        return text_value[:position] + replacement + text_value[position + 1:]
    if edit == "insert":
        return text_value[:position] + replacement + text_value[position:]
    if edit == "truncate":
        return text_value[:position]
    return draw(loose_timestamps())


@st.composite
def near_valid_events(draw) -> dict:
    """A valid event with one field deleted, replaced, retyped, or (for occurred_at) edited."""
    obj = draw(valid_events())
    name = draw(st.sampled_from(FIELD_NAMES))
    how = draw(st.sampled_from(["delete", "random", "retype", "timestamp", "timestamp"]))
    if how == "delete":
        obj.pop(name, None)
    elif how == "random" or name not in obj:
        obj[name] = draw(json_values)
    elif how == "retype":
        obj[name] = draw(changed_type(obj[name]))
    else:
        obj["occurred_at"] = draw(mutated_timestamps(obj["occurred_at"]))
    return obj


def parser_accepts(obj: object) -> bool:
    try:
        event_from_dict(obj)
    except InvalidEvent as exc:
        assert exc.reason in REJECT_REASONS
        return False
    return True


# The one rule JSON Schema cannot state is the 2000-2100 range of a string occurred_at:
# the schema can only check the year as written, the parser checks the instant in UTC,
# so on the days next to a bound an offset can carry a time across it.
NEXT_TO_A_BOUND = {"1999-12-31": "2050-12-31", "2000-01-01": "2050-01-01",
                   "2099-12-31": "2050-12-31", "2100-01-01": "2050-01-01"}


def outside_schema_reach(obj: dict) -> bool:
    """A well-formed occurred_at on a day next to a bound, where the two may rightly differ."""
    value = obj.get("occurred_at")
    if not isinstance(value, str) or value[:10] not in NEXT_TO_A_BOUND:
        return False
    well_formed = {"event_id": "e", "type": "contact.abandoned", "contact_id": "c",
                   "occurred_at": NEXT_TO_A_BOUND[value[:10]] + value[10:]}
    return validator("contact-event.v1").is_valid(well_formed)


# (a) Random bytes
@fuzz
@given(st.one_of(
    st.binary(max_size=256),
    st.builds(lambda value, cut: orjson.dumps(value)[:cut], json_values, st.integers(0, 64)),
    st.builds(lambda obj, noise: orjson.dumps(obj) + noise, valid_events(), st.binary(max_size=4)),
))
def test_random_bytes_only_ever_raise_invalid_event(raw):
    try:
        parse_event(raw)
    except InvalidEvent as exc:
        assert exc.reason in REJECT_REASONS
        assert isinstance(exc.detail, str) and exc.detail


# (b) Near-valid events through the whole path, bytes in
@fuzz
@given(near_valid_events())
def test_near_valid_events_parse_or_raise_invalid_event(obj):
    raw = orjson.dumps(obj)
    try:
        parsed = parse_event(raw)
    except InvalidEvent as exc:
        assert exc.reason in REJECT_REASONS
    else:
        assert parsed.type in EVENT_TYPES
        assert MIN_OCCURRED_AT_MS <= parsed.occurred_at_ms < MAX_OCCURRED_AT_MS


# (c) Parser and schema agree
@fuzz
@given(valid_events())
def test_parser_and_schema_accept_every_valid_event(obj):
    assume(not outside_schema_reach(obj))

    assert parser_accepts(obj)
    assert validator("contact-event.v1").is_valid(obj)
    assert validator("contact-event.v1").is_valid(parse_event(orjson.dumps(obj)).to_json())


@fuzz
@given(near_valid_events())
def test_parser_and_schema_agree_on_near_valid_events(obj):
    assume(not outside_schema_reach(obj))

    schema_errors = [error.message for error in validator("contact-event.v1").iter_errors(obj)]

    assert parser_accepts(obj) == (not schema_errors), schema_errors


@fuzz
@given(st.one_of(loose_timestamps(), valid_timestamps.flatmap(mutated_timestamps)))
def test_parser_and_schema_agree_on_near_miss_timestamps(value):
    obj = {"event_id": "e", "type": "contact.abandoned", "contact_id": "c", "occurred_at": value}
    assume(not outside_schema_reach(obj))

    assert parser_accepts(obj) == validator("contact-event.v1").is_valid(obj)


near_the_bounds = st.one_of(st.dates(date(1999, 12, 25), date(2000, 1, 5)),
                            st.dates(date(2099, 12, 25), date(2100, 1, 5)))


@fuzz
@given(rfc3339_timestamps(near_the_bounds))
def test_parser_and_schema_differ_only_next_to_the_bounds(value):
    obj = {"event_id": "e", "type": "contact.abandoned", "contact_id": "c", "occurred_at": value}
    in_range_as_written = "2000" <= value[:4] <= "2099"

    assert validator("contact-event.v1").is_valid(obj) == in_range_as_written
    if not outside_schema_reach(obj):
        assert parser_accepts(obj) == in_range_as_written


# (d) Derived records validate
nullable_timestamps = st.none() | epoch_ms.map(format_ms)
seconds = st.floats(min_value=0, max_value=86_400, allow_nan=False)
counts = st.integers(min_value=0, max_value=10**6)
ratios = st.none() | st.floats(min_value=0, max_value=1)

outcome_records = st.fixed_dictionaries({
    "record": st.sampled_from(["left_queue", "ended"]),
    "contact_id": identifiers,
    "queue": identifiers,
    "channel": st.sampled_from(CHANNELS),
    "outcome": st.sampled_from(["answered", "abandoned", "short_abandoned", "callback", "transferred", "expired"]),
    "enqueued_at": nullable_timestamps,
    "left_queue_at": nullable_timestamps,
    "wait_seconds": st.none() | seconds,
    "agent_id": st.none() | identifiers,
    "holds": counts,
    "hold_seconds": seconds,
    "transfers": counts,
    "handle_seconds": st.none() | seconds,
    "ended_at": nullable_timestamps,
})
window_values = st.fixed_dictionaries({
    "contacts_queued": counts,
    "contacts_answered": counts,
    "contacts_abandoned": counts,
    "contacts_short_abandoned": counts,
    "abandon_ratio": ratios,
    "service_level_ratio": ratios,
    "answer_wait_seconds": st.none() | seconds,
    "holds": counts,
    "hold_abandons": counts,
    "average_hold_seconds": st.none() | seconds,
    "transfers": counts,
    "transfer_ratio": st.none() | st.floats(min_value=0, max_value=3),
    "average_handle_seconds": st.none() | seconds,
})
queue_stats_records = st.fixed_dictionaries({
    "queue": identifiers,
    "channel": st.sampled_from(CHANNELS),
    "at": epoch_ms.map(format_ms),
    "current": st.fixed_dictionaries({
        "waiting_contacts": counts,
        "oldest_wait_seconds": seconds,
        "on_hold_contacts": counts,
        "active_contacts": counts,
        "estimated_wait_seconds": st.none() | seconds,
    }),
    "windows": st.fixed_dictionaries({name: window_values for name in ("5m", "15m", "1h", "today")}),
    "targets": st.fixed_dictionaries({
        "service_level_threshold_seconds": st.floats(min_value=0.5, max_value=600),
        "short_abandon_seconds": st.floats(min_value=0, max_value=60),
        "target_service_level_ratio": st.floats(min_value=0, max_value=1),
        "target_abandon_ratio": st.floats(min_value=0, max_value=1),
        "target_max_wait_seconds": st.floats(min_value=1, max_value=3600),
    }),
    "totals": st.fixed_dictionaries({name: counts for name in (
        "contacts_queued", "contacts_answered", "contacts_abandoned", "contacts_short_abandoned",
        "contacts_callback", "holds", "hold_abandons", "transfers", "contacts_expired")}),
})


@records
@given(outcome_records)
def test_contact_outcome_records_validate(record):
    validator("contact-outcome.v1").validate(orjson.loads(orjson.dumps(record)))


@records
@given(queue_stats_records)
def test_queue_stats_records_validate(record):
    validator("queue-stats.v1").validate(orjson.loads(orjson.dumps(record)))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


@records
@given(
    raw=st.one_of(st.binary(max_size=64), near_valid_events().map(orjson.dumps)),
    key=st.none() | st.binary(max_size=16),
    partition=st.integers(0, 1023),
    offset=st.integers(0, 2**62),
    rejected_at_ms=epoch_ms,
)
def test_dead_letter_records_of_real_rejections_validate(raw, key, partition, offset, rejected_at_ms):
    try:
        parse_event(raw)
    except InvalidEvent as exc:
        reason, detail = exc.reason, exc.detail
    else:
        reason, detail = "invalid_field", "rejected downstream"

    record = dead_letter_record(raw, reason, detail, "callpulse.contact-events", partition, offset, key,
                                rejected_at_ms)

    validator("dead-letter.v1").validate(orjson.loads(orjson.dumps(record)))
    assert base64.b64decode(record["raw_base64"], validate=True) == raw
    assert record["raw"] == (raw.decode() if _is_utf8(raw) else None)
    assert record["source"]["key"] is None if key is None else isinstance(record["source"]["key"], str)


def test_schemas_reject_records_that_break_them():
    outcome = {"record": "ended", "contact_id": "c-1", "queue": "support", "channel": "voice",
               "outcome": "answered", "enqueued_at": "2026-11-22T08:00:00.000Z",
               "left_queue_at": "2026-11-22T08:00:12.000Z", "wait_seconds": 12.0, "agent_id": "a-7", "holds": 0,
               "hold_seconds": 0.0, "transfers": 0, "handle_seconds": 300.0, "ended_at": None}
    check = validator("contact-outcome.v1")
    assert check.is_valid(outcome)
    assert not check.is_valid(outcome | {"outcome": "dropped"})
    assert not check.is_valid(outcome | {"holds": -1})
    assert not check.is_valid(outcome | {"enqueued_at": "2026-11-22T08:00:00"})
    assert not check.is_valid({k: v for k, v in outcome.items() if k != "ended_at"})
    assert not check.is_valid(outcome | {"surprise": 1})

    dead = dead_letter_record(b"{", "not_json", "truncated", "callpulse.contact-events", 0, 1, None, 1_795_334_400_000)
    assert validator("dead-letter.v1").is_valid(dead)
    assert not validator("dead-letter.v1").is_valid(dead | {"reason": "bad_vibes"})
    assert not validator("dead-letter.v1").is_valid(dead | {"raw_base64": "not base64!"})


def _property_schemas(schema: object, path: str = "$"):
    """Every subschema that describes a named property, anywhere in the document."""
    if isinstance(schema, dict):
        for name, subschema in schema.get("properties", {}).items():
            yield f"{path}.{name}", subschema
        for key, value in schema.items():
            if key != "if":  # conditions name a property only to test it
                yield from _property_schemas(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _property_schemas(value, f"{path}[{index}]")


def test_schemas_are_valid_and_fully_described():
    for name in SCHEMA_NAMES:
        schema = load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(name) and schema["title"] and schema["description"]
        validator(name)  # check_schema raises on an invalid schema
        undescribed = [path for path, sub in _property_schemas(schema) if not sub.get("description")]
        assert not undescribed, f"{name}: {undescribed}"
