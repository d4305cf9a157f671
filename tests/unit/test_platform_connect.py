"""Amazon Connect contact events and agent stream records to v1 events: segments, transfers, holds, rejects, ids."""

from __future__ import annotations

import copy
import doctest
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

import streams.platforms.connect
from streams.contract.events import (
    REJECT_INVALID_FIELD,
    REJECT_INVALID_TIMESTAMP,
    REJECT_MISSING_FIELD,
    REJECT_NOT_JSON,
    REJECT_NOT_OBJECT,
    REJECT_UNKNOWN_TYPE,
    Event,
    InvalidEvent,
    event_from_dict,
)
from streams.platforms import CONVERTERS, ConnectConverter

DATA = Path(__file__).parents[1] / "data" / "platforms"
CONTACT_EVENTS = DATA / "connect_contact_events.ndjson"
AGENT_EVENTS = DATA / "connect_agent_events.ndjson"

INSTANCE = "arn:aws:connect:eu-central-1:111122223333:instance/4f1c0a2e-8d1b-4c3e-9f5a-6b7c8d9e0f12"
QUEUE_NAMES = {
    "7d3c2f0e-1a2b-4c5d-8e9f-0a1b2c3d4e5f": "support",
    "2b8e4a91-3c4d-4e5f-9a0b-1c2d3e4f5a6b": "sales",
    f"{INSTANCE}/queue/9c1d7e3f-5a6b-4c7d-8e9f-2a3b4c5d6e7f": "billing",   # keyed by ARN works as well
}
ALICE = "0d1f3a5b-7c9e-4b2d-a4f6-8e0a2c4e6f81"
BOB = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"

# Contact ids of the sample (uuid5 of a readable name, as real contact ids are opaque).
C = {
    "c1": "f6d5f4ae-de12-532f-a0df-a2d2c43d03f0",
    "c2": "bda925fb-e9d3-5cb2-9bc6-83b30f1f5358",
    "c3": "5b77eadc-2d78-5f8c-8815-8e5d5f5b7652",
    "c4a": "a0e79c0c-ff37-5fd9-bd82-a82f7d7739ab",
    "c4b": "e2927b27-e0ed-59c1-b855-b5e5ae47afbb",
    "c5a": "773aae55-9869-5b3b-b20f-94bb544ebb76",
    "c5b": "b3d0c3fb-4a3e-5201-bd51-95035656fdb4",
    "c6a": "c702f75b-656a-5603-94c6-f8593a8d096f",
    "c6b": "ce792252-03f1-58e8-b35b-b572f7de6e29",
    "c7a": "97f2f2cd-63f2-5aba-bf87-b831bf6f84b0",
    "c7b": "e70d2447-2fbb-5485-a885-af5fe14c9cd4",
    "c8a": "4c6dea45-ce69-5e37-b14d-dc425c666e5c",
}

CONTACT_REJECTS = {46: REJECT_NOT_JSON, 47: REJECT_UNKNOWN_TYPE, 48: REJECT_MISSING_FIELD,
                   49: REJECT_INVALID_TIMESTAMP, 50: REJECT_NOT_OBJECT}
AGENT_REJECTS = {15: REJECT_MISSING_FIELD, 16: REJECT_UNKNOWN_TYPE, 17: REJECT_INVALID_FIELD,
                 18: REJECT_MISSING_FIELD}


@dataclass
class Run:
    events: list[Event]
    per_line: dict[int, list[Event]]
    rejects: dict[int, InvalidEvent]

    def contact(self, contact_id: str) -> list[dict]:
        out = []
        for event in self.events:
            if event.contact_id == contact_id and not event.is_agent_event:
                brief = event.to_json()
                del brief["event_id"], brief["contact_id"]
                out.append(brief)
        return out

    def agent(self, agent_id: str) -> list[tuple[str, str]]:
        return [(e.to_json()["occurred_at"], e.state) for e in self.events
                if e.is_agent_event and e.agent_id == agent_id]


def convert_file(converter: ConnectConverter, path: Path) -> Run:
    events: list[Event] = []
    per_line: dict[int, list[Event]] = {}
    rejects: dict[int, InvalidEvent] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            per_line[number] = converter.convert(line)
        except InvalidEvent as exc:
            rejects[number] = exc
        else:
            events.extend(per_line[number])
    return Run(events, per_line, rejects)


def new_converter(**options: object) -> ConnectConverter:
    return ConnectConverter(**{"queue_names": QUEUE_NAMES, **options})


@pytest.fixture(scope="module")
def contacts() -> Run:
    return convert_file(new_converter(), CONTACT_EVENTS)


@pytest.fixture(scope="module")
def agents() -> Run:
    return convert_file(new_converter(), AGENT_EVENTS)


def sample_record(path: Path, line_number: int) -> dict:
    return orjson.loads(path.read_bytes().splitlines()[line_number - 1])


def test_sample_contact_ids_are_the_ones_in_the_file() -> None:
    text = CONTACT_EVENTS.read_text()
    assert all(contact_id in text for contact_id in C.values())


# -- contact events, call by call -----------------------------------------------------------

def test_answered_call_maps_queue_answer_end_and_after_contact_work(contacts: Run) -> None:
    assert contacts.contact(C["c1"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:12.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:00:30.000Z", "agent_id": ALICE},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:03:20.000Z", "disconnected_by": "customer"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:04:00.000Z"},
    ]


def test_disconnect_while_queued_is_an_end_the_core_counts_as_abandon(contacts: Run) -> None:
    """Line 7 repeats line 6 (at-least-once delivery): same event id, so callpulse drops it."""
    assert contacts.contact(C["c2"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:20.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:00:45.000Z", "disconnected_by": "customer"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:00:45.000Z", "disconnected_by": "customer"},
    ]
    assert contacts.per_line[6] == contacts.per_line[7]
    assert contacts.per_line[8] == []   # COMPLETED without an agent: no after-contact work


def test_chat_with_pascal_case_fields_and_epoch_ms_timestamps(contacts: Run) -> None:
    assert contacts.contact(C["c3"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:50.000Z", "queue": "sales", "channel": "chat"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:01:35.000Z", "agent_id": BOB},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:06:40.000Z", "disconnected_by": "agent"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:07:10.000Z"},
    ]


def test_agent_transfer_to_a_queue_marks_the_old_segment_before_its_end_and_offers_the_new_one(contacts: Run) -> None:
    assert contacts.contact(C["c4a"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:05:00.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:05:10.000Z", "agent_id": BOB},
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:08:20.000Z", "transfer_type": "blind"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:08:21.000Z", "disconnected_by": "agent"},
        # the new segment's QUEUED announces the same transfer again, under the same id
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:08:22.000Z", "transfer_type": "blind",
         "to_queue": "billing"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:09:00.000Z"},
    ]
    transfers = [e for e in contacts.events if e.contact_id == C["c4a"] and e.type == "contact.transferred"]
    assert transfers[0].event_id == transfers[1].event_id
    assert contacts.contact(C["c4b"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:08:22.000Z", "queue": "billing", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:09:20.000Z", "agent_id": ALICE},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:11:40.000Z", "disconnected_by": "customer"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:11:55.000Z"},
    ]


def test_queue_to_queue_transfer_by_the_flow_is_a_transfer_not_an_abandon(contacts: Run) -> None:
    assert contacts.contact(C["c5a"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:10:00.000Z", "queue": "sales", "channel": "voice"},
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:11:30.000Z", "transfer_type": "blind",
         "to_queue": "support"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:11:30.000Z", "disconnected_by": "system"},
    ]
    assert [e["type"] for e in contacts.contact(C["c5b"])] == [
        "contact.queued", "contact.answered", "contact.ended", "contact.wrapup_ended"]


def test_queued_callback_marks_the_original_contact_and_queues_the_callback(contacts: Run) -> None:
    assert contacts.contact(C["c6a"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:13:20.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.callback_requested", "occurred_at": "2026-11-22T08:14:20.000Z"},
        {"type": "contact.callback_requested", "occurred_at": "2026-11-22T08:14:21.000Z"},   # same id again
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:14:22.000Z", "disconnected_by": "customer"},
    ]
    assert contacts.contact(C["c6b"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:14:21.000Z", "queue": "support", "channel": "voice"},
    ]


def test_transfer_to_an_agent_goes_to_the_shared_agent_queue_label(contacts: Run) -> None:
    assert contacts.contact(C["c7a"])[-1] == {
        "type": "contact.transferred", "occurred_at": "2026-11-22T08:16:40.000Z", "transfer_type": "blind"}
    assert contacts.contact(C["c7b"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:16:40.000Z", "queue": "agent-queue",
         "channel": "voice"},
    ]


def test_external_outbound_segment_is_an_external_transfer_of_the_previous_contact(contacts: Run) -> None:
    assert contacts.contact(C["c8a"]) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:18:20.000Z", "queue": "billing", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:18:24.000Z", "agent_id": BOB},
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:20:00.000Z", "transfer_type": "external"},
    ]


@pytest.mark.parametrize(("line", "what"), [
    (1, "INITIATED of an inbound call"),
    (2, "CONNECTED_TO_SYSTEM"),
    (40, "CONNECTED_TO_SYSTEM of the external segment"),
    (41, "a TASK contact"),
    (42, "an agent's OUTBOUND call"),
    (43, "DISCONNECTED in the IVR, never queued"),
    (44, "CONTACT_DATA_UPDATED"),
    (45, "a Contact Lens rules event"),
])
def test_records_without_anything_to_measure_convert_to_nothing(contacts: Run, line: int, what: str) -> None:
    assert contacts.per_line[line] == [], what


def test_every_malformed_contact_record_is_rejected_with_its_reason(contacts: Run) -> None:
    assert {number: exc.reason for number, exc in contacts.rejects.items()} == CONTACT_REJECTS


def test_queue_without_a_name_is_labelled_by_its_id_and_a_bare_detail_converts_too() -> None:
    detail = sample_record(CONTACT_EVENTS, 3)["detail"]
    [event] = ConnectConverter().convert(detail)
    assert (event.type, event.queue) == ("contact.queued", "7d3c2f0e-1a2b-4c5d-8e9f-0a1b2c3d4e5f")


def test_field_name_case_does_not_change_the_events_or_their_ids() -> None:
    record = sample_record(CONTACT_EVENTS, 4)
    shouted = copy.deepcopy(record)
    shouted["detail"] = {key.upper(): value for key, value in record["detail"].items()}
    shouted["DETAIL-TYPE"] = shouted.pop("detail-type")
    assert ConnectConverter().convert(shouted) == ConnectConverter().convert(record)


# -- agent event stream ---------------------------------------------------------------------

def test_agent_states_follow_contacts_first_then_the_status(agents: Run) -> None:
    assert agents.agent(ALICE) == [
        ("2026-11-22T07:59:00.000Z", "available"),            # LOGIN, Available
        ("2026-11-22T08:00:25.000Z", "available"),            # contact INCOMING: still available
        ("2026-11-22T08:00:30.000Z", "on_contact"),
        ("2026-11-22T08:01:20.000Z", "on_contact"),           # on hold is still on contact
        ("2026-11-22T08:01:50.000Z", "on_contact"),
        ("2026-11-22T08:03:20.000Z", "after_contact_work"),   # contact ENDED: in ACW
        ("2026-11-22T08:04:00.000Z", "available"),
        ("2026-11-22T08:25:00.000Z", "unavailable"),          # custom status Lunch
        ("2026-11-22T08:30:00.000Z", "offline"),              # LOGOUT
    ]
    assert agents.events[0].queues == ("billing", "sales", "support")


def test_hold_start_and_end_come_from_contact_states_including_a_record_without_previous_snapshot(
        agents: Run) -> None:
    assert agents.contact(C["c1"]) == [
        {"type": "contact.hold_started", "occurred_at": "2026-11-22T08:01:20.000Z"},
        {"type": "contact.hold_ended", "occurred_at": "2026-11-22T08:01:50.000Z"},   # line 6 has no previous
    ]


def test_hang_up_on_hold_has_no_hold_end_so_the_core_sees_a_hold_abandon(agents: Run) -> None:
    assert agents.contact(C["c5b"]) == [{"type": "contact.hold_started", "occurred_at": "2026-11-22T08:12:40.000Z"}]
    assert agents.agent(BOB) == [
        ("2026-11-22T08:12:00.000Z", "on_contact"),
        ("2026-11-22T08:12:40.000Z", "on_contact"),
        ("2026-11-22T08:13:20.000Z", "after_contact_work"),
        ("2026-11-22T08:13:40.000Z", "available"),
    ]


def test_heart_beat_carries_nothing(agents: Run) -> None:
    assert agents.per_line[5] == []


def test_every_malformed_agent_record_is_rejected_with_its_reason(agents: Run) -> None:
    assert {number: exc.reason for number, exc in agents.rejects.items()} == AGENT_REJECTS


def test_without_previous_snapshot_the_hold_end_needs_the_remembered_record() -> None:
    on_hold, back = sample_record(AGENT_EVENTS, 4), sample_record(AGENT_EVENTS, 6)
    converter = ConnectConverter()
    converter.convert(on_hold)
    assert [e.type for e in converter.convert(back)][0] == "contact.hold_ended"
    assert [e.type for e in ConnectConverter().convert(back)] == ["agent.state_changed"]


def test_agent_memory_stays_within_max_entries() -> None:
    record = sample_record(AGENT_EVENTS, 3)
    converter = ConnectConverter(max_entries=20)
    for n in range(500):
        record["AgentARN"] = f"{INSTANCE}/agent/agent-{n}"
        converter.convert(record)
    assert converter.tracked_agents == 20


# -- the contract, ids, determinism ---------------------------------------------------------

def test_every_event_round_trips_through_the_v1_contract(contacts: Run, agents: Run) -> None:
    assert len(contacts.events) + len(agents.events) > 50
    for event in contacts.events + agents.events:
        assert event_from_dict(event.to_json()) == event


def test_event_ids_are_stable_across_runs_and_distinct_apart_from_repeated_facts(contacts: Run, agents: Run) -> None:
    assert convert_file(new_converter(), CONTACT_EVENTS).events == contacts.events
    assert convert_file(new_converter(), AGENT_EVENTS).events == agents.events
    events = contacts.events + agents.events
    assert all(re.fullmatch(r"connect:[0-9a-f]{24}:[0-9]+", e.event_id) for e in events)
    by_id: dict[str, set[tuple]] = {}
    for e in events:
        by_id.setdefault(e.event_id, set()).add((e.type, e.contact_id))
    assert all(len(facts) == 1 for facts in by_id.values())   # one id never names two facts
    repeated = len(events) - len(by_id)
    assert repeated == 3   # the repeated DISCONNECTED; c4a's transfer and c6a's callback, each announced twice


def test_a_record_as_bytes_str_or_dict_converts_alike() -> None:
    raw = CONTACT_EVENTS.read_bytes().splitlines()[2]
    expected = ConnectConverter().convert(raw)
    assert ConnectConverter().convert(raw.decode()) == expected
    assert ConnectConverter().convert(orjson.loads(raw)) == expected


@pytest.mark.parametrize(("record", "reason"), [
    ({"source": "aws.connect"}, REJECT_UNKNOWN_TYPE),
    ({"detail-type": "Amazon Connect Contact Event"}, REJECT_MISSING_FIELD),
    ({"detail-type": "Amazon Connect Contact Event", "detail": "QUEUED"}, REJECT_NOT_OBJECT),
    ({"detail": {"contactId": "c-1"}}, REJECT_MISSING_FIELD),
    ({"detail": {"eventType": "QUEUED"}}, REJECT_MISSING_FIELD),
    ({"detail": {"eventType": "QUEUED", "contactId": 7}}, REJECT_INVALID_FIELD),
    ({"time": "2026-11-22T08:00:00Z", "detail": {"eventType": "QUEUED", "contactId": "c-1",
                                                 "queueInfo": {"queueArn": "q"}}}, REJECT_MISSING_FIELD),
    ({"detail": {"eventType": "QUEUED", "contactId": "c-1", "channel": "VOICE", "queueInfo": {"queueArn": "q"}}},
     REJECT_MISSING_FIELD),
    ({"detail": {"eventType": "DISCONNECTED", "contactId": "c-1", "channel": "VOICE", "queueInfo": {},
                 "agentInfo": {"agentArn": "a"}, "disconnectTimestamp": "1999-12-31T23:59:59Z"}},
     REJECT_INVALID_TIMESTAMP),
    ("[]", REJECT_NOT_OBJECT),
    (b"\xff\xfe", REJECT_NOT_JSON),
])
def test_unconvertible_records_raise_invalid_event(record: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        ConnectConverter().convert(record)
    assert raised.value.reason == reason


def test_the_registry_names_the_connect_converter() -> None:
    assert CONVERTERS["connect"] is ConnectConverter


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(streams.platforms.connect).failed == 0
