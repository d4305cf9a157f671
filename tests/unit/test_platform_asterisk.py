"""Asterisk queue_log lines to v1 events: every kind of call in the sample log, agent states, rejects, stable ids."""

from __future__ import annotations

import doctest
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import streams.platforms
import streams.platforms.asterisk
import streams.platforms.common
from streams.contract.events import (
    REJECT_INVALID_FIELD,
    REJECT_INVALID_TIMESTAMP,
    REJECT_MISSING_FIELD,
    REJECT_UNKNOWN_TYPE,
    Event,
    InvalidEvent,
    event_from_dict,
)
from streams.platforms import CONVERTERS, AsteriskConverter

SAMPLE = Path(__file__).parents[1] / "data" / "platforms" / "sample_queue_log"
QUEUE_EXTENSIONS = {"7001": "support", "7002": "sales", "7003": "billing"}

# The malformed lines of the sample log, by line number.
REJECTED_LINES = {
    19: REJECT_MISSING_FIELD,       # prose, not a queue_log line
    34: REJECT_MISSING_FIELD,       # cut off after the queue
    42: REJECT_INVALID_TIMESTAMP,   # epoch "yesterday"
    52: REJECT_UNKNOWN_TYPE,        # FROBNICATE
    56: REJECT_MISSING_FIELD,       # CONNECT with agent NONE
    57: REJECT_MISSING_FIELD,       # ENTERQUEUE with callid NONE
    58: REJECT_INVALID_FIELD,       # ATTENDEDTRANSFER TELEPATHY
}


@dataclass
class Run:
    events: list[Event]
    rejects: dict[int, InvalidEvent]

    def contact(self, contact_id: str) -> list[dict]:
        """The contact's v1 events as JSON, without the fields every entry would repeat."""
        return [_brief(e, "contact_id") for e in self.events if e.contact_id == contact_id and not e.is_agent_event]

    def agent(self, agent_id: str) -> list[tuple[str, str, list[str] | None]]:
        return [(e.to_json()["occurred_at"], e.state, list(e.queues) if e.queues else None)
                for e in self.events if e.is_agent_event and e.agent_id == agent_id]


def _brief(event: Event, *drop: str) -> dict:
    out = event.to_json()
    for name in ("event_id", *drop):
        out.pop(name, None)
    return out


def new_converter(**options: object) -> AsteriskConverter:
    return AsteriskConverter(**{"queue_extensions": QUEUE_EXTENSIONS, "callback_keys": {"5"}, **options})


def convert_sample(converter: AsteriskConverter) -> Run:
    events: list[Event] = []
    rejects: dict[int, InvalidEvent] = {}
    for number, line in enumerate(SAMPLE.read_bytes().splitlines(), 1):
        try:
            events.extend(converter.convert(line))
        except InvalidEvent as exc:
            rejects[number] = exc
    return Run(events, rejects)


@pytest.fixture(scope="module")
def run() -> Run:
    return convert_sample(new_converter())


def convert_lines(converter: AsteriskConverter, *lines: str) -> list[Event]:
    return [event for line in lines for event in converter.convert(line)]


# -- complete calls, event by event ---------------------------------------------------------

def test_answered_call_is_queued_answered_ended_and_wrapped_up_at_the_complete_time(run: Run) -> None:
    assert run.contact("1795334408.101") == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:10.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:00:28.500Z", "agent_id": "Bob"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:03:30.250Z", "disconnected_by": "customer"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:03:30.250Z"},
    ]


def test_abandon_is_contact_abandoned_whatever_the_wait(run: Run) -> None:
    assert run.contact("1795334439.110") == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:40.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.abandoned", "occurred_at": "2026-11-22T08:01:25.000Z"},
    ]
    # 2.4 s in queue: short abandons are the core's call, made from the wait.
    assert run.contact("1795334450.115") == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:50.100Z", "queue": "sales", "channel": "voice"},
        {"type": "contact.abandoned", "occurred_at": "2026-11-22T08:00:52.500Z"},
    ]


def test_blind_transfer_to_a_queue_extension_requeues_the_same_contact_without_ending_it(run: Run) -> None:
    assert run.contact("1795334459.120") == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:01:00.000Z", "queue": "sales", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:01:06.000Z", "agent_id": "Alice"},
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:03:00.000Z", "transfer_type": "blind",
         "to_queue": "billing"},
        # queue_log logs the ENTERQUEUE in the transfer's second: placed 1 ms after the transfer
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:03:00.001Z", "queue": "billing", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:03:12.000Z", "agent_id": "Agent/1004"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:06:40.000Z", "disconnected_by": "agent"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:06:40.000Z"},
    ]


def test_blind_transfer_to_an_external_number_ends_the_agents_part(run: Run) -> None:
    assert run.contact("1795334699.140") == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:05:00.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:05:05.000Z", "agent_id": "Bob"},
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:06:30.000Z", "transfer_type": "external"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:06:30.000Z", "disconnected_by": "agent"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:06:30.000Z"},
    ]


@pytest.mark.parametrize(("contact_id", "answered_by", "transferred_at"), [
    ("1795334719.150", "PJSIP/1003", "2026-11-22T08:08:20.000Z"),   # BRIDGE
    ("1795334949.160", "Bob", "2026-11-22T08:11:40.000Z"),          # LINK, two channels
    ("1795334999.170", "Alice", "2026-11-22T08:11:00.000Z"),        # APP VoiceMail
])
def test_attended_transfers_of_every_method_are_warm_and_end_the_agents_part(
        run: Run, contact_id: str, answered_by: str, transferred_at: str) -> None:
    events = run.contact(contact_id)
    assert [e["type"] for e in events] == [
        "contact.queued", "contact.answered", "contact.transferred", "contact.ended", "contact.wrapup_ended"]
    assert events[1]["agent_id"] == answered_by
    assert events[2] == {"type": "contact.transferred", "occurred_at": transferred_at, "transfer_type": "warm"}
    assert events[3] == {"type": "contact.ended", "occurred_at": transferred_at, "disconnected_by": "agent"}


def test_legacy_transfer_to_an_internal_extension_is_blind(run: Run) -> None:
    assert run.contact("1795335199.180")[2:] == [
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:15:00.000Z", "transfer_type": "blind"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:15:00.000Z", "disconnected_by": "agent"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:15:00.000Z"},
    ]


@pytest.mark.parametrize(("contact_id", "left_at"), [
    ("1795335399.190", "2026-11-22T08:21:40.000Z"),   # EXITWITHTIMEOUT after 300 s
    ("1795335509.210", "2026-11-22T08:18:30.000Z"),   # EXITEMPTY: nobody unpaused in billing
    ("1795335419.205", "2026-11-22T08:17:15.750Z"),   # EXITWITHKEY 0, not a callback key here
])
def test_flow_outs_are_a_blind_transfer_out_of_the_queue_and_a_system_end(
        run: Run, contact_id: str, left_at: str) -> None:
    assert run.contact(contact_id)[1:] == [
        {"type": "contact.transferred", "occurred_at": left_at, "transfer_type": "blind"},
        {"type": "contact.ended", "occurred_at": left_at, "disconnected_by": "system"},
    ]


def test_exit_with_a_callback_key_is_a_callback_request(run: Run) -> None:
    assert run.contact("1795335409.200") == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:16:50.000Z", "queue": "sales", "channel": "voice"},
        {"type": "contact.callback_requested", "occurred_at": "2026-11-22T08:17:30.000Z"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:17:30.000Z", "disconnected_by": "system"},
    ]


def test_exit_with_key_is_a_flow_out_when_no_key_means_callback() -> None:
    converter = AsteriskConverter()
    events = convert_lines(converter, "1795335410|1795335409.200|sales|NONE|ENTERQUEUE||+49|2",
                           "1795335450|1795335409.200|sales|NONE|EXITWITHKEY|5|2|2|40")
    assert [(e.type, e.transfer_type) for e in events] == [
        ("contact.queued", None), ("contact.transferred", "blind"), ("contact.ended", None)]


def test_blind_transfer_to_a_queue_named_like_its_extension_is_a_requeue() -> None:
    """FreePBX names queues by extension: a queue seen in ENTERQUEUE is a transfer target without configuration."""
    converter = AsteriskConverter()
    events = convert_lines(
        converter,
        "1795334400|1795334399.1|401|NONE|ENTERQUEUE||+49|1",
        "1795334410|1795334409.2|400|NONE|ENTERQUEUE||+49|1",
        "1795334415|1795334409.2|400|Alice|CONNECT|5|1795334415.3|1",
        "1795334500|1795334409.2|400|Alice|BLINDTRANSFER|401|from-internal|5|85|1",
    )
    contact = [e for e in events if e.contact_id == "1795334409.2" and not e.is_agent_event]
    assert [(e.type, e.to_queue) for e in contact] == [
        ("contact.queued", None), ("contact.answered", None), ("contact.transferred", "401")]


@pytest.mark.parametrize(("exten", "transfer_type"), [
    ("+493012345678", "external"),
    ("004989123456", "external"),
    ("1002", "blind"),
    ("voicemail", "blind"),
])
def test_transfer_target_type_is_told_from_the_extension(exten: str, transfer_type: str) -> None:
    converter = AsteriskConverter()
    events = converter.convert(f"1795334500|1795334409.2|support|Bob|BLINDTRANSFER|{exten}|from-internal|5|85|1")
    assert events[0].type == "contact.transferred"
    assert events[0].transfer_type == transfer_type


def test_connect_waittime_is_queue_wait_and_never_produces_hold_events(run: Run) -> None:
    assert not [e for e in run.events if e.type.startswith("contact.hold")]


# -- agents ---------------------------------------------------------------------------------

def test_agent_paused_in_one_queue_stays_available_for_its_other_queue(run: Run) -> None:
    assert run.agent("Alice") == [
        ("2026-11-22T08:00:01.000Z", "available", ["support"]),           # ADDMEMBER support
        ("2026-11-22T08:00:01.000Z", "available", ["sales", "support"]),  # ADDMEMBER sales
        ("2026-11-22T08:00:25.000Z", "available", ["sales", "support"]),  # auto-paused in support only
        ("2026-11-22T08:01:06.000Z", "on_contact", ["sales", "support"]),
        ("2026-11-22T08:03:00.000Z", "available", ["sales", "support"]),  # transferred the call
        ("2026-11-22T08:10:04.000Z", "on_contact", ["sales", "support"]),
        ("2026-11-22T08:11:00.000Z", "available", ["sales", "support"]),
        ("2026-11-22T08:20:20.000Z", "available", ["sales", "support"]),  # UNPAUSE support
    ]


def test_pause_all_makes_the_agent_unavailable_until_unpause_all_and_logoff_makes_it_offline(run: Run) -> None:
    assert run.agent("Agent/1004") == [
        ("2026-11-22T08:00:03.000Z", "available", None),            # AGENTLOGIN
        ("2026-11-22T08:00:03.000Z", "available", ["billing"]),
        ("2026-11-22T08:03:12.000Z", "on_contact", ["billing"]),
        ("2026-11-22T08:06:40.000Z", "available", ["billing"]),
        ("2026-11-22T08:13:29.000Z", "on_contact", ["billing"]),
        ("2026-11-22T08:15:00.000Z", "available", ["billing"]),
        ("2026-11-22T08:18:20.000Z", "unavailable", ["billing"]),   # PAUSEALL
        ("2026-11-22T08:18:20.000Z", "unavailable", ["billing"]),   # its per-queue PAUSE
        ("2026-11-22T08:20:00.000Z", "available", ["billing"]),     # UNPAUSEALL
        ("2026-11-22T08:20:00.000Z", "available", ["billing"]),
        ("2026-11-22T08:25:00.000Z", "offline", ["billing"]),       # AGENTLOGOFF
    ]


def test_removing_the_last_membership_makes_the_agent_offline(run: Run) -> None:
    assert run.agent("PJSIP/1003")[-1] == ("2026-11-22T08:23:20.000Z", "offline", None)


def test_on_contact_state_names_the_contact(run: Run) -> None:
    on_contact = [e for e in run.events if e.is_agent_event and e.state == "on_contact"]
    assert on_contact and all(e.contact_id for e in on_contact)


# -- rejects, ignored lines -----------------------------------------------------------------

def test_every_malformed_line_of_the_sample_is_rejected_with_its_reason(run: Run) -> None:
    assert {number: exc.reason for number, exc in run.rejects.items()} == REJECTED_LINES
    assert all(exc.detail for exc in run.rejects.values())


@pytest.mark.parametrize("line", [
    "",
    "   \n",
    "1795334400|NONE|NONE|NONE|QUEUESTART|",
    "1795334410|1795334408.101|NONE|NONE|DID|+4930901820",
    "1795334425|1795334408.101|support|Alice|RINGNOANSWER|15000",
    "1795334592|1795334459.120|billing|Agent/1004|RINGCANCELED|1200",
    "1795335905|NONE|NONE|NONE|CONFIGRELOAD|",
])
def test_lines_without_anything_to_measure_convert_to_nothing(line: str) -> None:
    assert AsteriskConverter().convert(line) == []


@pytest.mark.parametrize(("record", "reason"), [
    ({"event": "ENTERQUEUE"}, REJECT_INVALID_FIELD),
    ("1795334410|1795334408.101|support|NONE|", REJECT_MISSING_FIELD),
    ("-5|1795334408.101|support|NONE|ENTERQUEUE||x|1", REJECT_INVALID_TIMESTAMP),
    ("1795334410.5e3|1795334408.101|support|NONE|ENTERQUEUE||x|1", REJECT_INVALID_TIMESTAMP),
    ("9000000000|1795334408.101|support|NONE|ENTERQUEUE||x|1", REJECT_INVALID_TIMESTAMP),
    ("1795334410|1795334408.101|NONE|NONE|ENTERQUEUE||x|1", REJECT_MISSING_FIELD),
    ("1795334580|1795334459.120|sales|Alice|BLINDTRANSFER||from-internal|6|114|1", REJECT_MISSING_FIELD),
    ("1795334900|1795334719.150|sales|Bob|ATTENDEDTRANSFER|LINK|PJSIP/1003-0000000a", REJECT_MISSING_FIELD),
    ("1795334425|NONE|support|NONE|PAUSE|", REJECT_MISSING_FIELD),
    ("1795334425|NONE|NONE|Alice|ADDMEMBER|", REJECT_MISSING_FIELD),
])
def test_unconvertible_records_raise_invalid_event(record: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        AsteriskConverter().convert(record)
    assert raised.value.reason == reason


# -- the contract, ids, determinism, bounded memory -----------------------------------------

def test_every_event_round_trips_through_the_v1_contract(run: Run) -> None:
    assert len(run.events) > 80
    for event in run.events:
        assert event_from_dict(event.to_json()) == event


def test_event_ids_are_platform_digest_and_index_and_unique_in_the_log(run: Run) -> None:
    ids = [e.event_id for e in run.events]
    assert all(re.fullmatch(r"asterisk:[0-9a-f]{24}:[0-9]+", event_id) for event_id in ids)
    assert len(set(ids)) == len(ids)


def test_reconverting_the_log_yields_identical_events_and_ids(run: Run) -> None:
    again = convert_sample(new_converter())
    assert again.events == run.events


def test_a_line_as_bytes_or_str_with_or_without_newline_gives_the_same_ids() -> None:
    line = "1795334428.5|1795334408.101|support|Bob|CONNECT|18|1795334428.105|3"
    as_str = AsteriskConverter().convert(line)
    assert AsteriskConverter().convert((line + "\r\n").encode()) == as_str
    assert [e.event_id.rsplit(":", 1)[1] for e in as_str] == ["0", "1"]


def test_epoch_fractions_are_kept_to_the_millisecond() -> None:
    events = AsteriskConverter().convert("1795334400.123456|1795334399.1|support|NONE|ENTERQUEUE||+49|1")
    assert events[0].occurred_at_ms == 1_795_334_400_123


def test_a_call_reentering_a_queue_in_the_second_it_left_one_is_queued_just_after_leaving() -> None:
    converter = AsteriskConverter()
    events = convert_lines(
        converter,
        "1795335400|1795335399.190|support|NONE|ENTERQUEUE||+49|1",
        "1795335700|1795335399.190|support|NONE|EXITWITHTIMEOUT|1|1|300",
        "1795335700|1795335399.190|sales|NONE|ENTERQUEUE||+49|1",
        "1795335760|1795335399.190|sales|NONE|ABANDON|1|1|60",
    )
    assert [(e.type, e.occurred_at_ms) for e in events] == [
        ("contact.queued", 1_795_335_400_000),
        ("contact.transferred", 1_795_335_700_000),
        ("contact.ended", 1_795_335_700_000),
        ("contact.queued", 1_795_335_700_001),
        ("contact.abandoned", 1_795_335_760_000),
    ]


def test_agent_and_queue_memory_stays_within_max_entries() -> None:
    converter = AsteriskConverter(max_entries=50)
    for n in range(1_000):
        converter.convert(f"1795334400|NONE|queue-{n}|agent-{n}|ADDMEMBER|")
        converter.convert(f"1795334401|1795334400.{n}|queue-{n}|NONE|ENTERQUEUE||+49|1")
        converter.convert(f"1795334402|1795334400.{n}|queue-{n}|agent-{n}|CONNECT|1|x|1")
    assert converter.tracked_agents == 50
    assert converter.tracked_queues == 50
    assert converter.tracked_calls == 50


def test_the_registry_names_the_asterisk_converter() -> None:
    assert CONVERTERS["asterisk"] is AsteriskConverter
    assert AsteriskConverter.platform == "asterisk"


@pytest.mark.parametrize("module", [streams.platforms, streams.platforms.asterisk, streams.platforms.common])
def test_docstring_examples_hold(module: object) -> None:
    assert doctest.testmod(module).failed == 0
