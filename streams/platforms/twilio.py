"""Twilio TaskRouter events, as webhook form fields or Event Streams CloudEvents, to v1 events.

Mapping and reasons: docs/platforms.md. A task is a callpulse contact (TaskSid
is the contact_id) and a worker an agent (WorkerSid is the agent_id). Webhook
fields (TaskSid, TimestampMs) and Event Streams payload fields (task_sid,
timestamp) are matched without case or '_', so one code path reads both.

State, all bounded LRU (`max_entries`): TaskQueue sid -> name, because a
transfer names its target queue by sid only; and per worker the last activity
and its open reservations, because TaskRouter keeps a worker "Available" while
it handles tasks, and callpulse wants on_contact and after_contact_work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson

from streams.contract.events import (
    AGENT_STATE_CHANGED,
    CONTACT_ABANDONED,
    CONTACT_ANSWERED,
    CONTACT_CALLBACK_REQUESTED,
    CONTACT_ENDED,
    CONTACT_QUEUED,
    CONTACT_TRANSFERRED,
    CONTACT_WRAPUP_ENDED,
    REJECT_INVALID_FIELD,
    REJECT_MISSING_FIELD,
    REJECT_NOT_JSON,
    REJECT_NOT_OBJECT,
    REJECT_UNKNOWN_TYPE,
    Event,
    InvalidEvent,
)
from streams.platforms.common import (
    DEFAULT_MAX_ENTRIES,
    BoundedDict,
    build_events,
    canonical_json,
    epoch_ms,
    fact_source,
    first_present,
    fold_keys,
    load_json,
)

CLOUD_EVENT_PREFIX = "com.twilio.taskrouter."

DEFAULT_CHANNELS: Mapping[str, str] = {
    "voice": "voice", "default": "voice",
    "chat": "chat", "sms": "chat", "messaging": "chat", "whatsapp": "chat",
}
"""TaskChannel unique name -> v1 channel; tasks on other channels (video, email...) are skipped."""

DEFAULT_ACTIVITY_STATES: Mapping[str, str] = {
    "available": "available", "idle": "available",
    "offline": "offline",
    "busy": "on_contact", "on call": "on_contact",
    "wrapup": "after_contact_work", "wrap up": "after_contact_work", "wrap-up": "after_contact_work",
    "after call work": "after_contact_work",
}
"""Worker activity name (any case) -> v1 agent state; any other activity (Break, Lunch...) is unavailable."""

DEFAULT_ABANDON_REASONS = ("hangup", "hung up", "abandon")
DEFAULT_CALLBACK_REASONS = ("callback",)

# Every TaskRouter event; those without a handler carry nothing callpulse measures.
KNOWN_EVENTS = frozenset({
    "activity.created", "activity.updated", "activity.deleted",
    "reservation.created", "reservation.accepted", "reservation.rejected", "reservation.timeout",
    "reservation.canceled", "reservation.rescinded", "reservation.completed", "reservation.failed",
    "reservation.wrapup",
    "task.created", "task.updated", "task.canceled", "task.wrapup", "task.completed", "task.deleted",
    "task.system-deleted", "task.transfer-initiated", "task.transfer-attempt-failed",
    "task.transfer-failed", "task.transfer-canceled", "task.transfer-completed",
    "task-queue.created", "task-queue.deleted", "task-queue.entered", "task-queue.timeout",
    "task-queue.moved", "task-queue.expression.updated",
    "worker.created", "worker.deleted", "worker.activity.update", "worker.attributes.update",
    "worker.capacity.update", "worker.channel.availability.update",
    "workflow.created", "workflow.updated", "workflow.deleted", "workflow.target-matched",
    "workflow.entered", "workflow.timeout", "workflow.skipped",
    "workspace.created", "workspace.updated", "workspace.deleted",
})

_MAX_RESERVATIONS_PER_WORKER = 64


@dataclass(slots=True)
class _Worker:
    """What TaskRouter told us about one worker: its activity and its reservations in progress."""

    activity_state: str | None = None
    reservations: dict[str, str] = field(default_factory=dict)   # reservation sid -> accepted | wrapping

    def state(self) -> str:
        statuses = set(self.reservations.values())
        if "accepted" in statuses:
            return "on_contact"
        if "wrapping" in statuses:
            return "after_contact_work"
        return self.activity_state or "available"


@dataclass(slots=True, frozen=True)
class _Record:
    source: bytes
    event: str
    fields: dict
    occurred_at_ms: int


class TwilioConverter:
    """Converts one TaskRouter event: a form-field dict, an urlencoded body, a CloudEvent, or a JSON array of them.

    >>> converter = TwilioConverter()
    >>> [e.type for e in converter.convert(
    ...     "EventType=task-queue.entered&TaskSid=WT1&TaskQueueSid=WQ1&TaskQueueName=support"
    ...     "&TaskChannelUniqueName=voice&Timestamp=1795334400")]
    ['contact.queued']

    Options: `channels`, `activity_states` (merged over the defaults above),
    `abandon_reasons` and `callback_reasons` (substrings of TaskCanceledReason,
    any case), `max_entries` (bound of the queue and worker memories).
    """

    platform = "twilio"

    def __init__(
        self,
        *,
        channels: Mapping[str, str] | None = None,
        activity_states: Mapping[str, str] | None = None,
        abandon_reasons: Iterable[str] = DEFAULT_ABANDON_REASONS,
        callback_reasons: Iterable[str] = DEFAULT_CALLBACK_REASONS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.channels = {k.lower(): v for k, v in {**DEFAULT_CHANNELS, **(channels or {})}.items()}
        self.activity_states = {k.lower(): v for k, v in
                                {**DEFAULT_ACTIVITY_STATES, **(activity_states or {})}.items()}
        self.abandon_reasons = tuple(r.lower() for r in abandon_reasons)
        self.callback_reasons = tuple(r.lower() for r in callback_reasons)
        self._queue_names: BoundedDict[str, str] = BoundedDict(max_entries)
        self._workers: BoundedDict[str, _Worker] = BoundedDict(max_entries)

    @property
    def tracked_workers(self) -> int:
        return len(self._workers)

    @property
    def tracked_queues(self) -> int:
        return len(self._queue_names)

    def convert(self, record: bytes | str | dict) -> list[Event]:
        if isinstance(record, dict):
            return self._convert_object(record)
        if isinstance(record, bytes):
            try:
                record = record.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidEvent(REJECT_NOT_JSON, "not UTF-8") from None
        if not isinstance(record, str):
            raise InvalidEvent(REJECT_NOT_OBJECT, f"expected a TaskRouter event, got {type(record).__name__}")
        text = record.strip()
        if text[:1] in ("{", "["):
            decoded = load_json(text)
            if isinstance(decoded, list):
                return [event for item in decoded for event in self._convert_object(item)]
            return self._convert_object(decoded)
        return self._convert_object(_form_fields(text))

    # -- decoding --------------------------------------------------------------------------

    def _convert_object(self, obj: object) -> list[Event]:
        if not isinstance(obj, dict):
            raise InvalidEvent(REJECT_NOT_OBJECT, f"expected a TaskRouter event object, got {type(obj).__name__}")
        folded = fold_keys(obj)
        record = self._record(folded)
        if record is None:
            return []
        handler = _HANDLERS.get(record.event)
        if handler is None:
            if record.event in KNOWN_EVENTS:
                return []
            raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"unknown TaskRouter event {record.event[:64]!r}")
        self._remember_queue_name(record.fields)
        if not self._channel_in_scope(record.fields):
            return []
        return build_events(self.platform, handler(self, record))

    def _record(self, folded: dict) -> _Record | None:
        """Webhook fields or a CloudEvent's payload, with the event name and time; None for other products."""
        fallback_time = None
        if "specversion" in folded or ("type" in folded and "data" in folded):
            cloud_type = folded.get("type")
            if not isinstance(cloud_type, str) or not cloud_type:
                raise InvalidEvent(REJECT_MISSING_FIELD, "CloudEvent type is required")
            if not cloud_type.startswith(CLOUD_EVENT_PREFIX):
                if cloud_type.startswith("com.twilio."):
                    return None  # other Twilio products on the same sink
                raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"not a Twilio event type: {cloud_type[:64]!r}")
            data = folded.get("data")
            if not isinstance(data, dict):
                raise InvalidEvent(REJECT_MISSING_FIELD, "CloudEvent data is required")
            payload = data.get("payload")
            fields = payload if isinstance(payload, dict) else data
            event = cloud_type[len(CLOUD_EVENT_PREFIX):]
            fallback_time = first_present(folded, "time") or first_present(data, "timestamp")
        else:
            fields = folded
            event = fields.get("eventtype")
            if not isinstance(event, str) or not event:
                raise InvalidEvent(REJECT_MISSING_FIELD, "EventType is required")
        timestamp = first_present(fields, "timestampms", "timestamp")
        if timestamp is None:
            timestamp = fallback_time
        if timestamp is None:
            raise InvalidEvent(REJECT_MISSING_FIELD, "Timestamp or TimestampMs is required")
        name = "TimestampMs" if "timestampms" in fields else "Timestamp"
        return _Record(canonical_json(folded), event.lower(), fields, epoch_ms(timestamp, name))

    def _remember_queue_name(self, fields: dict) -> None:
        sid, name = fields.get("taskqueuesid"), fields.get("taskqueuename")
        if isinstance(sid, str) and sid and isinstance(name, str) and name:
            self._queue_names[sid] = name

    def _channel_in_scope(self, fields: dict) -> bool:
        name = _channel_name(fields)
        return name is None or name.lower() in self.channels

    # -- tasks -----------------------------------------------------------------------------

    def _task_queue_entered(self, record: _Record) -> list[tuple[bytes, dict]]:
        task_sid = _sid(record.fields, "tasksid", "TaskSid")
        queue = record.fields.get("taskqueuename")
        if not isinstance(queue, str) or not queue:
            queue = self._queue_names.get(str(record.fields.get("taskqueuesid", "")))
        if not queue:
            raise InvalidEvent(REJECT_MISSING_FIELD, "TaskQueueName is required on task-queue.entered")
        channel_name = _channel_name(record.fields)
        if channel_name is None:
            raise InvalidEvent(REJECT_MISSING_FIELD, "TaskChannelUniqueName is required on task-queue.entered")
        return [(record.source, {"type": CONTACT_QUEUED, "contact_id": task_sid, "occurred_at": record.occurred_at_ms,
                                 "queue": queue, "channel": self.channels[channel_name.lower()]})]

    def _task_canceled(self, record: _Record) -> list[tuple[bytes, dict]]:
        """A canceled task never reached a worker: abandon, callback or flow-out by its reason."""
        task_sid = _sid(record.fields, "tasksid", "TaskSid")
        reason = str(first_present(record.fields, "taskcanceledreason", "reason") or "").lower()
        base = {"contact_id": task_sid, "occurred_at": record.occurred_at_ms}
        if any(marker in reason for marker in self.abandon_reasons):
            return [(record.source, {**base, "type": CONTACT_ABANDONED})]
        if any(marker in reason for marker in self.callback_reasons):
            first = {**base, "type": CONTACT_CALLBACK_REQUESTED}
        else:
            # TTL or workflow timeout, API cancel: the caller goes on elsewhere (voicemail, another flow).
            first = {**base, "type": CONTACT_TRANSFERRED, "transfer_type": "blind"}
        return [(record.source, first), (record.source, {**base, "type": CONTACT_ENDED, "disconnected_by": "system"})]

    def _task_wrapup(self, record: _Record) -> list[tuple[bytes, dict]]:
        return [self._task_ended(record)]

    def _task_completed(self, record: _Record) -> list[tuple[bytes, dict]]:
        """Completion ends wrap-up; it also ends the contact when no task.wrapup came (or was lost)."""
        task_sid = _sid(record.fields, "tasksid", "TaskSid")
        wrapup_ended = {"type": CONTACT_WRAPUP_ENDED, "contact_id": task_sid, "occurred_at": record.occurred_at_ms}
        return [self._task_ended(record), (record.source, wrapup_ended)]

    def _task_ended(self, record: _Record) -> tuple[bytes, dict]:
        """One contact.ended per task, whichever of task.wrapup and task.completed announces it."""
        task_sid = _sid(record.fields, "tasksid", "TaskSid")
        return (fact_source("ended", task_sid),
                {"type": CONTACT_ENDED, "contact_id": task_sid, "occurred_at": record.occurred_at_ms})

    def _task_transfer_initiated(self, record: _Record) -> list[tuple[bytes, dict]]:
        task_sid = _sid(record.fields, "tasksid", "TaskSid")
        mode = str(record.fields.get("transfermode") or "").upper()
        if mode not in ("WARM", "COLD"):
            raise InvalidEvent(REJECT_INVALID_FIELD if mode else REJECT_MISSING_FIELD,
                               "TransferMode must be WARM or COLD")
        to_queue = None
        if str(record.fields.get("transfertype") or "").upper() == "QUEUE":
            to_queue = self._queue_names.get(str(record.fields.get("transferto") or ""))
        return [(record.source, {"type": CONTACT_TRANSFERRED, "contact_id": task_sid,
                                 "occurred_at": record.occurred_at_ms,
                                 "transfer_type": "warm" if mode == "WARM" else "blind", "to_queue": to_queue})]

    # -- reservations and workers ----------------------------------------------------------

    def _reservation_accepted(self, record: _Record) -> list[tuple[bytes, dict]]:
        task_sid = _sid(record.fields, "tasksid", "TaskSid")
        worker_sid = _sid(record.fields, "workersid", "WorkerSid")
        answered = {"type": CONTACT_ANSWERED, "contact_id": task_sid, "occurred_at": record.occurred_at_ms,
                    "agent_id": worker_sid}
        return [(record.source, answered), self._reservation_moved(record, "accepted", contact_id=task_sid)]

    def _reservation_wrapup(self, record: _Record) -> list[tuple[bytes, dict]]:
        return [self._reservation_moved(record, "wrapping")]

    def _reservation_completed(self, record: _Record) -> list[tuple[bytes, dict]]:
        return [self._reservation_moved(record, None)]

    def _reservation_moved(self, record: _Record, status: str | None,
                           contact_id: str | None = None) -> tuple[bytes, dict]:
        worker_sid = _sid(record.fields, "workersid", "WorkerSid")
        reservation = str(first_present(record.fields, "reservationsid", "tasksid") or "")
        worker = self._worker(worker_sid)
        if status is None:
            worker.reservations.pop(reservation, None)
        else:
            worker.reservations[reservation] = status
            while len(worker.reservations) > _MAX_RESERVATIONS_PER_WORKER:
                del worker.reservations[next(iter(worker.reservations))]
        return (record.source, self._agent_fields(record, worker_sid, worker, contact_id))

    def _worker_activity_update(self, record: _Record) -> list[tuple[bytes, dict]]:
        worker_sid = _sid(record.fields, "workersid", "WorkerSid")
        activity = record.fields.get("workeractivityname")
        if not isinstance(activity, str) or not activity:
            raise InvalidEvent(REJECT_MISSING_FIELD, "WorkerActivityName is required on worker.activity.update")
        worker = self._worker(worker_sid)
        worker.activity_state = self.activity_states.get(activity.strip().lower(), "unavailable")
        return [(record.source, self._agent_fields(record, worker_sid, worker))]

    def _worker(self, worker_sid: str) -> _Worker:
        worker = self._workers.get(worker_sid) or _Worker()
        self._workers[worker_sid] = worker
        return worker

    @staticmethod
    def _agent_fields(record: _Record, worker_sid: str, worker: _Worker, contact_id: str | None = None) -> dict:
        return {"type": AGENT_STATE_CHANGED, "agent_id": worker_sid, "occurred_at": record.occurred_at_ms,
                "state": worker.state(), "contact_id": contact_id}


_HANDLERS = {
    "task-queue.entered": TwilioConverter._task_queue_entered,
    "task.canceled": TwilioConverter._task_canceled,
    "task.wrapup": TwilioConverter._task_wrapup,
    "task.completed": TwilioConverter._task_completed,
    "task.transfer-initiated": TwilioConverter._task_transfer_initiated,
    "reservation.accepted": TwilioConverter._reservation_accepted,
    "reservation.wrapup": TwilioConverter._reservation_wrapup,
    "reservation.completed": TwilioConverter._reservation_completed,
    "worker.activity.update": TwilioConverter._worker_activity_update,
}


def _form_fields(text: str) -> dict:
    """An application/x-www-form-urlencoded webhook body as a dict (the last of repeated fields wins)."""
    if not text:
        raise InvalidEvent(REJECT_NOT_JSON, "empty record")
    try:
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise InvalidEvent(REJECT_NOT_JSON, "neither JSON nor a form-encoded webhook body") from None


def _channel_name(fields: dict) -> str | None:
    """TaskChannelUniqueName, else the channelType Flex puts in the task attributes."""
    name = fields.get("taskchanneluniquename")
    if isinstance(name, str) and name:
        return name
    attributes = fields.get("taskattributes")
    if isinstance(attributes, str) and attributes.startswith("{"):
        try:
            attributes = orjson.loads(attributes)
        except orjson.JSONDecodeError:
            return None
    if isinstance(attributes, dict):
        channel_type = attributes.get("channelType", attributes.get("channeltype"))
        if isinstance(channel_type, str) and channel_type:
            return channel_type
    return None


def _sid(fields: dict, key: str, name: str) -> str:
    value = fields.get(key)
    if value is None or value == "":
        raise InvalidEvent(REJECT_MISSING_FIELD, f"{name} is required")
    if not isinstance(value, str):
        raise InvalidEvent(REJECT_INVALID_FIELD, f"{name} must be a string")
    return value
