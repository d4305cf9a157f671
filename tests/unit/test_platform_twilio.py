"""Twilio TaskRouter webhooks and Event Streams CloudEvents to v1 events: tasks, workers, rejects, stable ids."""

from __future__ import annotations

import doctest
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest

import streams.platforms.twilio
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
from streams.platforms import CONVERTERS, TwilioConverter

DATA = Path(__file__).parents[1] / "data" / "platforms"
WEBHOOKS = DATA / "twilio_webhooks.ndjson"
EVENT_STREAMS = DATA / "twilio_event_streams.ndjson"

WEBHOOK_REJECTS = {55: REJECT_MISSING_FIELD, 56: REJECT_UNKNOWN_TYPE, 57: REJECT_MISSING_FIELD,
                   58: REJECT_INVALID_TIMESTAMP, 59: REJECT_MISSING_FIELD}
EVENT_STREAM_REJECTS = {11: REJECT_UNKNOWN_TYPE, 12: REJECT_MISSING_FIELD, 13: REJECT_NOT_OBJECT}


def sid(prefix: str, name: str) -> str:
    """The sample's sids: a prefix and the md5 of a readable name, shaped like Twilio's."""
    return prefix + hashlib.md5(name.encode()).hexdigest()


def task(name: str) -> str:
    return sid("WT", name)


ALICE, BOB, CAROL = sid("WK", "alice"), sid("WK", "bob"), sid("WK", "carol")


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


def convert_file(path: Path, converter: TwilioConverter | None = None) -> Run:
    converter = converter or TwilioConverter()
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


@pytest.fixture(scope="module")
def webhooks() -> Run:
    return convert_file(WEBHOOKS)


@pytest.fixture(scope="module")
def streams_run() -> Run:
    return convert_file(EVENT_STREAMS)


def webhook_fields(line_number: int) -> dict:
    return orjson.loads(WEBHOOKS.read_bytes().splitlines()[line_number - 1])


# -- tasks, one by one ----------------------------------------------------------------------

def test_answered_voice_task_with_wrap_up(webhooks: Run) -> None:
    """task.wrapup and task.completed both announce the end under one id: the first (wrap-up start) wins."""
    assert webhooks.contact(task("t1")) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:00.100Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:00:14.200Z", "agent_id": BOB},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:03:00.000Z"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:03:35.000Z"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:03:35.000Z"},
    ]
    ends = [e for e in webhooks.events if e.contact_id == task("t1") and e.type == "contact.ended"]
    assert ends[0].event_id == ends[1].event_id


def test_task_canceled_on_hangup_is_an_abandon(webhooks: Run) -> None:
    assert webhooks.contact(task("t2")) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:00:20.100Z", "queue": "support", "channel": "voice"},
        {"type": "contact.abandoned", "occurred_at": "2026-11-22T08:00:51.000Z"},
    ]


def test_chat_task_with_second_timestamps_only(webhooks: Run) -> None:
    assert [(e["type"], e["occurred_at"]) for e in webhooks.contact(task("t3"))] == [
        ("contact.queued", "2026-11-22T08:00:30.000Z"),
        ("contact.answered", "2026-11-22T08:01:35.000Z"),
        ("contact.ended", "2026-11-22T08:05:00.000Z"),
        ("contact.ended", "2026-11-22T08:05:20.000Z"),
        ("contact.wrapup_ended", "2026-11-22T08:05:20.000Z"),
    ]
    assert webhooks.contact(task("t3"))[0]["channel"] == "chat"


def test_cold_transfer_to_a_queue_names_the_queue_from_its_sid_and_the_new_task_is_a_new_offer(
        webhooks: Run) -> None:
    assert webhooks.contact(task("t4")) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:06:40.000Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:06:46.000Z", "agent_id": ALICE},
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:08:40.000Z", "transfer_type": "blind",
         "to_queue": "billing"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:08:41.000Z"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:09:00.000Z"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:09:00.000Z"},
    ]
    assert [e["type"] for e in webhooks.contact(task("t4b"))] == [
        "contact.queued", "contact.answered", "contact.ended", "contact.ended", "contact.wrapup_ended"]
    assert webhooks.contact(task("t4b"))[0]["queue"] == "billing"


def test_warm_transfer_to_a_worker_is_warm_without_a_queue(webhooks: Run) -> None:
    assert webhooks.contact(task("t5"))[2] == {
        "type": "contact.transferred", "occurred_at": "2026-11-22T08:10:00.000Z", "transfer_type": "warm"}


def test_ttl_cancel_is_a_flow_out_and_a_callback_reason_a_callback(webhooks: Run) -> None:
    assert webhooks.contact(task("t6"))[1:] == [
        {"type": "contact.transferred", "occurred_at": "2026-11-22T08:16:40.000Z", "transfer_type": "blind"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:16:40.000Z", "disconnected_by": "system"},
    ]
    assert webhooks.contact(task("t7"))[1:] == [
        {"type": "contact.callback_requested", "occurred_at": "2026-11-22T08:12:50.000Z"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:12:50.000Z", "disconnected_by": "system"},
    ]


def test_tasks_on_other_channels_produce_nothing(webhooks: Run) -> None:
    assert webhooks.per_line[46] == webhooks.per_line[47] == []
    assert not webhooks.contact(task("t8"))


@pytest.mark.parametrize(("line", "what"), [
    (4, "task.created: no queue yet, task-queue.entered follows"),
    (5, "workflow.target-matched"),
    (7, "reservation.created"),
    (8, "reservation.rejected"),
    (34, "task.transfer-completed"),
    (54, "task.updated"),
])
def test_events_without_anything_to_measure_convert_to_nothing(webhooks: Run, line: int, what: str) -> None:
    assert webhooks.per_line[line] == [], what


# -- workers --------------------------------------------------------------------------------

def test_worker_state_follows_reservations_then_activity(webhooks: Run) -> None:
    assert webhooks.agent(BOB) == [
        ("2026-11-22T07:59:40.000Z", "available"),
        ("2026-11-22T08:00:14.200Z", "on_contact"),
        ("2026-11-22T08:03:00.000Z", "after_contact_work"),
        ("2026-11-22T08:03:35.000Z", "available"),
        ("2026-11-22T08:06:49.000Z", "on_contact"),
        ("2026-11-22T08:10:40.000Z", "after_contact_work"),
        ("2026-11-22T08:10:50.000Z", "available"),
        ("2026-11-22T08:13:20.000Z", "unavailable"),   # Break
    ]
    assert webhooks.agent(ALICE)[-1] == ("2026-11-22T08:15:00.000Z", "offline")


def test_a_worker_on_a_task_stays_on_contact_whatever_its_activity() -> None:
    converter = TwilioConverter()
    accepted = webhook_fields(10)
    converter.convert(accepted)
    on_break = {"EventType": "worker.activity.update", "WorkerSid": accepted["WorkerSid"],
                "WorkerActivityName": "Break", "TimestampMs": "1795334420000"}
    assert [e.state for e in converter.convert(on_break)] == ["on_contact"]


@pytest.mark.parametrize(("activity", "state"), [
    ("Available", "available"), ("Offline", "offline"), ("Break", "unavailable"), ("Lunch", "unavailable"),
    ("Unavailable", "unavailable"), ("Busy", "on_contact"), ("WRAP UP", "after_contact_work"),
])
def test_worker_activities_map_to_agent_states(activity: str, state: str) -> None:
    event = {"EventType": "worker.activity.update", "WorkerSid": ALICE, "WorkerActivityName": activity,
             "Timestamp": "1795334400"}
    assert [e.state for e in TwilioConverter().convert(event)] == [state]


def test_activity_states_can_be_extended() -> None:
    converter = TwilioConverter(activity_states={"Training": "available"})
    event = {"EventType": "worker.activity.update", "WorkerSid": ALICE, "WorkerActivityName": "Training",
             "Timestamp": "1795334400"}
    assert converter.convert(event)[0].state == "available"


# -- Event Streams --------------------------------------------------------------------------

def test_cloud_events_with_iso_and_epoch_ms_timestamps(streams_run: Run) -> None:
    assert streams_run.contact(task("t10")) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:18:20.200Z", "queue": "support", "channel": "voice"},
        {"type": "contact.answered", "occurred_at": "2026-11-22T08:18:28.700Z", "agent_id": BOB},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:21:40.000Z"},
        {"type": "contact.ended", "occurred_at": "2026-11-22T08:22:00.000Z"},
        {"type": "contact.wrapup_ended", "occurred_at": "2026-11-22T08:22:00.000Z"},
    ]
    assert streams_run.agent(CAROL) == [("2026-11-22T08:16:40.000Z", "unavailable")]   # Lunch


def test_a_json_array_of_cloud_events_converts_element_by_element(streams_run: Run) -> None:
    assert streams_run.contact(task("t11")) == [
        {"type": "contact.queued", "occurred_at": "2026-11-22T08:23:20.000Z", "queue": "sales", "channel": "chat"},
        {"type": "contact.abandoned", "occurred_at": "2026-11-22T08:23:23.000Z"},
    ]


def test_other_twilio_products_on_the_same_sink_convert_to_nothing(streams_run: Run) -> None:
    assert streams_run.per_line[10] == []


def test_every_malformed_record_is_rejected_with_its_reason(webhooks: Run, streams_run: Run) -> None:
    assert {n: exc.reason for n, exc in webhooks.rejects.items()} == WEBHOOK_REJECTS
    assert {n: exc.reason for n, exc in streams_run.rejects.items()} == EVENT_STREAM_REJECTS


# -- input forms, the contract, ids, bounded memory -----------------------------------------

def test_an_urlencoded_body_converts_like_its_form_fields_with_the_same_ids() -> None:
    for number in (6, 10, 13, 18, 27, 43):
        fields = webhook_fields(number)
        body = urlencode(fields)
        assert TwilioConverter().convert(body) == TwilioConverter().convert(fields), number
        assert TwilioConverter().convert(body.encode()) == TwilioConverter().convert(fields), number


def test_every_event_round_trips_through_the_v1_contract(webhooks: Run, streams_run: Run) -> None:
    assert len(webhooks.events) + len(streams_run.events) > 60
    for event in webhooks.events + streams_run.events:
        assert event_from_dict(event.to_json()) == event


def test_event_ids_are_stable_across_runs_and_one_id_names_one_fact(webhooks: Run, streams_run: Run) -> None:
    assert convert_file(WEBHOOKS).events == webhooks.events
    assert convert_file(EVENT_STREAMS).events == streams_run.events
    events = webhooks.events + streams_run.events
    assert all(re.fullmatch(r"twilio:[0-9a-f]{24}:[0-9]+", e.event_id) for e in events)
    facts: dict[str, set[tuple]] = {}
    for e in events:
        facts.setdefault(e.event_id, set()).add((e.type, e.contact_id, e.agent_id))
    assert all(len(named) == 1 for named in facts.values())
    assert len(events) - len(facts) == 6   # six tasks whose end task.wrapup and task.completed both announce


def test_seconds_and_milliseconds_timestamps_agree() -> None:
    fields = {"EventType": "task-queue.entered", "TaskSid": task("x"), "TaskQueueName": "support",
              "TaskChannelUniqueName": "voice"}
    in_seconds = TwilioConverter().convert({**fields, "Timestamp": "1795334400"})
    in_ms = TwilioConverter().convert({**fields, "Timestamp": 1795334400000})
    iso = TwilioConverter().convert({**fields, "Timestamp": "2026-11-22T08:00:00Z"})
    assert in_seconds[0].occurred_at_ms == in_ms[0].occurred_at_ms == iso[0].occurred_at_ms == 1_795_334_400_000


def test_channel_falls_back_to_the_flex_channel_type_attribute() -> None:
    fields = {"EventType": "task-queue.entered", "TaskSid": task("x"), "TaskQueueName": "support",
              "TaskAttributes": '{"channelType": "sms"}', "Timestamp": "1795334400"}
    assert TwilioConverter().convert(fields)[0].channel == "chat"


@pytest.mark.parametrize(("record", "reason"), [
    ("", REJECT_NOT_JSON),
    ("EventType", REJECT_NOT_JSON),
    (b"\xff", REJECT_NOT_JSON),
    ("{not json", REJECT_NOT_JSON),
    (42, REJECT_NOT_OBJECT),
    ({"EventType": "task.canceled", "Timestamp": "1795334400"}, REJECT_MISSING_FIELD),
    ({"EventType": "task.canceled", "TaskSid": 7, "Timestamp": "1795334400"}, REJECT_INVALID_FIELD),
    ({"EventType": "reservation.accepted", "TaskSid": "WT1", "Timestamp": "1795334400"}, REJECT_MISSING_FIELD),
    ({"EventType": "worker.activity.update", "WorkerSid": "WK1", "Timestamp": "1795334400"}, REJECT_MISSING_FIELD),
    ({"EventType": "task-queue.entered", "TaskSid": "WT1", "TaskQueueName": "support", "Timestamp": "1795334400"},
     REJECT_MISSING_FIELD),
    ({"EventType": "task.transfer-initiated", "TaskSid": "WT1", "TransferMode": "TELEPATHIC",
      "Timestamp": "1795334400"}, REJECT_INVALID_FIELD),
    ({"EventType": "task.canceled", "TaskSid": "WT1", "Timestamp": "900000000"}, REJECT_INVALID_TIMESTAMP),
    ({"specversion": "1.0", "type": "com.twilio.taskrouter.task.canceled", "time": "2026-11-22T08:00:00Z"},
     REJECT_MISSING_FIELD),
])
def test_unconvertible_records_raise_invalid_event(record: object, reason: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        TwilioConverter().convert(record)
    assert raised.value.reason == reason


def test_queue_and_worker_memory_stays_within_max_entries() -> None:
    converter = TwilioConverter(max_entries=30)
    for n in range(500):
        converter.convert({"EventType": "task-queue.entered", "TaskSid": f"WT{n}", "TaskQueueSid": f"WQ{n}",
                           "TaskQueueName": f"queue-{n}", "TaskChannelUniqueName": "voice", "Timestamp": "1795334400"})
        converter.convert({"EventType": "reservation.accepted", "TaskSid": f"WT{n}", "WorkerSid": f"WK{n}",
                           "ReservationSid": f"WR{n}", "Timestamp": "1795334401"})
    assert converter.tracked_queues == 30
    assert converter.tracked_workers == 30


def test_the_registry_names_the_twilio_converter() -> None:
    assert CONVERTERS["twilio"] is TwilioConverter


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(streams.platforms.twilio).failed == 0
