"""Amazon Connect contact events (EventBridge) and agent event stream records to v1 events.

Mapping and reasons: docs/platforms.md. Field names are matched without case,
'_' or '-' (samples spell contactId, ContactId and contact_id), and timestamps
may be ISO strings or epoch seconds or milliseconds.

Each Connect contact segment is its own callpulse contact: a transfer creates a
new segment with a new contactId whose previousContactId names the old one, so
the old contact gets contact.transferred (or contact.callback_requested for a
queued callback) and the new one is a new offer to its queue, as Connect's own
"transferred in/out" metrics count it.

Queue labels: contact events carry only the queue ARN. The label is the name
given for the queue's ARN or id in `queue_names`, else the queue id; agents'
personal queues (transfers to an agent) share one label, `agent-queue`, so the
queue label stays bounded. Agent queues in the agent stream resolve the same
way, so both streams agree.

State: the agent stream needs each agent's previous contact states to see a
hold end. Records normally carry PreviousAgentSnapshot; when one does not, the
converter's own memory of the agent's last record is used (bounded LRU,
`max_entries` agents).
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.contract.events import (
    AGENT_STATE_CHANGED,
    CONTACT_ANSWERED,
    CONTACT_CALLBACK_REQUESTED,
    CONTACT_ENDED,
    CONTACT_HOLD_ENDED,
    CONTACT_HOLD_STARTED,
    CONTACT_QUEUED,
    CONTACT_TRANSFERRED,
    CONTACT_WRAPUP_ENDED,
    REJECT_INVALID_FIELD,
    REJECT_MISSING_FIELD,
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
    require_object,
)

CONTACT_EVENT_DETAIL_TYPE = "amazon connect contact event"
AGENT_QUEUE_LABEL = "agent-queue"

_CHANNELS = {"VOICE": "voice", "CHAT": "chat"}
# Segments that never wait in a queue for an agent: agent-dialled calls, supervisor
# monitoring, disconnect flows, agent replies to email.
_UNTRACKED_INITIATIONS = frozenset({"OUTBOUND", "MONITOR", "DISCONNECT", "AGENT_REPLY"})
# A segment started by one of these continues its previousContactId: v1 type and transfer_type for that one.
# An agent's quick-connect transfer (to a queue or agent) is TRANSFER, a queue flow's move to another
# queue QUEUE_TRANSFER, a queued callback CALLBACK, and a call out to an external number EXTERNAL_OUTBOUND.
# Contact events do not say whether the agent consulted first, so agent transfers count as blind.
_LINKS = {
    "TRANSFER": (CONTACT_TRANSFERRED, "blind"),
    "QUEUE_TRANSFER": (CONTACT_TRANSFERRED, "blind"),
    "EXTERNAL_OUTBOUND": (CONTACT_TRANSFERRED, "external"),
    "CALLBACK": (CONTACT_CALLBACK_REQUESTED, None),
}
_QUIET_CONTACT_EVENTS = frozenset({"INITIATED", "CONNECTED_TO_SYSTEM", "CONTACT_DATA_UPDATED"})
_CONTACT_EVENTS = _QUIET_CONTACT_EVENTS | {"QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED", "COMPLETED"}
_DISCONNECTED_BY = {"CUSTOMER_DISCONNECT": "customer", "AGENT_DISCONNECT": "agent"}

_ON_HOLD = "CONNECTED_ONHOLD"
_ON_CONTACT = frozenset({"CONNECTED", _ON_HOLD, "PAUSED"})
_IN_AFTER_CONTACT_WORK = "ENDED"
_AGENT_EVENTS = frozenset({"LOGIN", "LOGOUT", "STATE_CHANGE"})


class ConnectConverter:
    """Converts one EventBridge contact event or one agent event stream record.

    >>> converter = ConnectConverter(queue_names={"5a1e0c1e-9c4b-4c1e-8f1a-0b1d2c3d4e5f": "support"})
    >>> converter.convert({"detail-type": "Amazon Connect Contact Event", "detail": {
    ...     "eventType": "QUEUED", "contactId": "c-1", "channel": "VOICE", "initiationMethod": "INBOUND",
    ...     "queueInfo": {"queueArn": "arn:aws:connect:eu-central-1:111122223333:instance/i-1/queue/"
    ...                               "5a1e0c1e-9c4b-4c1e-8f1a-0b1d2c3d4e5f",
    ...                   "enqueueTimestamp": "2026-11-22T08:00:00.000Z"}}})[0].queue
    'support'
    """

    platform = "connect"

    def __init__(self, *, queue_names: Mapping[str, str] | None = None,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.queue_names = dict(queue_names or {})
        self._agent_contacts: BoundedDict[str, dict[str, str]] = BoundedDict(max_entries)

    @property
    def tracked_agents(self) -> int:
        return len(self._agent_contacts)

    def convert(self, record: bytes | str | dict) -> list[Event]:
        raw = record if isinstance(record, dict) else load_json(record)
        obj = require_object(fold_keys(require_object(raw, "a Connect record")), "a Connect record")
        source = canonical_json(obj)
        if "detail" in obj or "detailtype" in obj:
            detail_type = str(obj.get("detailtype", CONTACT_EVENT_DETAIL_TYPE)).lower()
            if detail_type != CONTACT_EVENT_DETAIL_TYPE:
                return []  # Contact Lens, rules, Voice ID events: nothing callpulse measures
            if obj.get("detail") is None:
                raise InvalidEvent(REJECT_MISSING_FIELD, "detail is required in a contact event")
            detail = require_object(obj["detail"], "detail")
            return build_events(self.platform, self._contact_event(detail, obj.get("time"), source))
        if "eventtype" in obj and ("agentarn" in obj or "currentagentsnapshot" in obj):
            return build_events(self.platform, self._agent_record(obj, source))
        if "eventtype" in obj and "contactid" in obj:
            return build_events(self.platform, self._contact_event(obj, None, source))
        raise InvalidEvent(REJECT_UNKNOWN_TYPE, "neither a Connect contact event nor an agent event stream record")

    # -- contact events --------------------------------------------------------------------

    def _contact_event(self, detail: dict, envelope_time: object, source: bytes) -> list[tuple[bytes, dict]]:
        event_type = _upper(detail.get("eventtype"))
        if not event_type:
            raise InvalidEvent(REJECT_MISSING_FIELD, "detail.eventType is required")
        if event_type not in _CONTACT_EVENTS:
            raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"unknown Connect contact eventType {event_type[:64]!r}")
        contact_id = _text(detail, "contactid", "contactId")
        channel_name = _upper(detail.get("channel"))
        if channel_name and channel_name not in _CHANNELS:
            return []  # tasks and email: callpulse measures voice and chat
        channel = _CHANNELS.get(channel_name)
        method = _upper(detail.get("initiationmethod"))
        previous = detail.get("previouscontactid") or None
        queue_info = _object(detail, "queueinfo")
        agent_info = _object(detail, "agentinfo")

        if method in _UNTRACKED_INITIATIONS:
            return []
        drafts: list[tuple[bytes, dict]] = []
        if isinstance(previous, str) and method in _LINKS and event_type in ("INITIATED", "QUEUED"):
            drafts.append(self._previous_segment(method, previous, contact_id, event_type, detail, envelope_time))
        if method == "EXTERNAL_OUTBOUND" or event_type in _QUIET_CONTACT_EVENTS:
            return drafts  # an external participant's segment is never queued for an agent

        if event_type == "QUEUED":
            queue = self._queue_label(queue_info)
            if channel is None:
                raise InvalidEvent(REJECT_MISSING_FIELD, "channel is required on a QUEUED contact event")
            at = _when(queue_info.get("enqueuetimestamp"), envelope_time, "queueInfo.enqueueTimestamp")
            drafts.append((source, {"type": CONTACT_QUEUED, "contact_id": contact_id, "occurred_at": at,
                                    "queue": queue, "channel": channel}))
            return drafts

        if event_type == "CONNECTED_TO_AGENT":
            agent_arn = agent_info.get("agentarn")
            if not agent_arn:
                raise InvalidEvent(REJECT_MISSING_FIELD, "agentInfo.agentArn is required on CONNECTED_TO_AGENT")
            at = _when(agent_info.get("connectedtoagenttimestamp"), envelope_time,
                       "agentInfo.connectedToAgentTimestamp")
            return [(source, {"type": CONTACT_ANSWERED, "contact_id": contact_id, "occurred_at": at,
                              "agent_id": _agent_id(agent_arn)})]

        if event_type == "DISCONNECTED":
            if not queue_info and not agent_info:
                return []  # ended in the IVR: never offered to a queue
            at = _when(detail.get("disconnecttimestamp"), envelope_time, "disconnectTimestamp")
            reason = _upper(detail.get("disconnectreason"))
            disconnected_by = _DISCONNECTED_BY.get(reason, "system") if reason else None
            return [(source, {"type": CONTACT_ENDED, "contact_id": contact_id, "occurred_at": at,
                              "disconnected_by": disconnected_by})]

        # COMPLETED: after-contact work is over; only contacts that reached an agent had any.
        if not agent_info:
            return []
        at = _when(agent_info.get("aftercontactworkendtimestamp"), envelope_time,
                   "agentInfo.afterContactWorkEndTimestamp")
        return [(source, {"type": CONTACT_WRAPUP_ENDED, "contact_id": contact_id, "occurred_at": at})]

    def _previous_segment(self, method: str, previous: str, contact_id: str, event_type: str,
                          detail: dict, envelope_time: object) -> tuple[bytes, dict]:
        """What a new segment says about the one it continues: transferred, or left for a callback.

        Announced by the new segment's INITIATED (at the moment of the transfer,
        before the old segment's DISCONNECTED) and again by its QUEUED, in case
        INITIATED was lost; both carry one id, derived from the pair of
        contacts, so callpulse keeps the first and drops the other as a duplicate.
        """
        queue_info = _object(detail, "queueinfo")
        if event_type == "QUEUED":
            at = _when(queue_info.get("enqueuetimestamp"), envelope_time, "queueInfo.enqueueTimestamp")
        else:
            at = _when(detail.get("initiationtimestamp"), envelope_time, "initiationTimestamp")
        kind, transfer_type = _LINKS[method]
        fields: dict = {"type": kind, "contact_id": previous, "occurred_at": at}
        if kind == CONTACT_TRANSFERRED:
            fields["transfer_type"] = transfer_type
            if first_present(queue_info, "queuearn", "queueid", "arn", "id") is not None:
                label = self._queue_label(queue_info)
                fields["to_queue"] = None if label == AGENT_QUEUE_LABEL else label
        return fact_source(kind, previous, contact_id), fields

    def _queue_label(self, queue_info: dict) -> str:
        reference = first_present(queue_info, "queuearn", "queueid", "arn", "id")
        if not isinstance(reference, str):
            raise InvalidEvent(REJECT_MISSING_FIELD, "queueInfo.queueArn is required on a QUEUED contact event")
        return self.queue_label(reference, _upper(queue_info.get("queuetype")))

    def queue_label(self, reference: str, queue_type: str = "") -> str:
        """The callpulse queue name for a Connect queue ARN or id."""
        if queue_type == "AGENT" or "/queue/agent/" in reference:
            return AGENT_QUEUE_LABEL
        if reference in self.queue_names:
            return self.queue_names[reference]
        queue_id = reference.rsplit("/queue/", 1)[-1]
        return self.queue_names.get(queue_id, queue_id)

    # -- agent event stream ----------------------------------------------------------------

    def _agent_record(self, record: dict, source: bytes) -> list[tuple[bytes, dict]]:
        event_type = _upper(record.get("eventtype"))
        if event_type == "HEART_BEAT":
            return []
        if event_type not in _AGENT_EVENTS:
            raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"unknown Connect agent EventType {event_type[:64]!r}")
        agent_arn = record.get("agentarn")
        if not isinstance(agent_arn, str) or not agent_arn:
            raise InvalidEvent(REJECT_MISSING_FIELD, "AgentARN is required")
        agent_id = _agent_id(agent_arn)
        if record.get("eventtimestamp") in (None, ""):
            raise InvalidEvent(REJECT_MISSING_FIELD, "EventTimestamp is required")
        at = epoch_ms(record["eventtimestamp"], "EventTimestamp")
        current = _object(record, "currentagentsnapshot")
        contacts = _contact_states(current)

        previous_snapshot = record.get("previousagentsnapshot")
        if isinstance(previous_snapshot, dict):
            before = {cid: state for cid, (state, _) in _contact_states(previous_snapshot).items()}
        else:
            before = self._agent_contacts.get(agent_id) or {}
        if event_type == "LOGOUT":
            self._agent_contacts.pop(agent_id)
        else:
            self._agent_contacts[agent_id] = {cid: state for cid, (state, _) in contacts.items()}

        drafts: list[tuple[bytes, dict]] = []
        for contact_id, (state, started) in contacts.items():
            was = before.get(contact_id)
            if state == _ON_HOLD and was != _ON_HOLD:
                kind = CONTACT_HOLD_STARTED
            elif state == "CONNECTED" and was == _ON_HOLD:
                kind = CONTACT_HOLD_ENDED
            else:
                continue
            drafts.append((source, {"type": kind, "contact_id": contact_id,
                                    "occurred_at": at if started is None else started}))
        drafts.append((source, {
            "type": AGENT_STATE_CHANGED,
            "agent_id": agent_id,
            "occurred_at": at,
            "state": "offline" if event_type == "LOGOUT" else _agent_state(current, contacts),
            "queues": self._agent_queues(current),
        }))
        return drafts

    def _agent_queues(self, snapshot: dict) -> list[str] | None:
        profile = _object(_object(snapshot, "configuration"), "routingprofile")
        queues = profile.get("inboundqueues")
        if not isinstance(queues, list):
            return None
        labels = set()
        for queue in queues:
            if isinstance(queue, dict):
                reference = first_present(queue, "arn", "queuearn", "id", "queueid")
                if isinstance(reference, str):
                    label = self.queue_label(reference, _upper(queue.get("queuetype")))
                    if label != AGENT_QUEUE_LABEL:
                        labels.add(label)
        return sorted(labels) or None


def _agent_state(snapshot: dict, contacts: dict[str, tuple[str, int | None]]) -> str:
    """Contacts decide first (Connect keeps the status "Available" while an agent talks), then the status."""
    states = {state for state, _ in contacts.values()}
    if states & _ON_CONTACT:
        return "on_contact"
    if _IN_AFTER_CONTACT_WORK in states:
        return "after_contact_work"
    status = _object(snapshot, "agentstatus")
    status_type = _upper(status.get("type"))
    name = _upper(status.get("name"))
    if status_type == "ROUTABLE" or (not status_type and name == "AVAILABLE"):
        return "available"
    if status_type == "OFFLINE" or (not status_type and name == "OFFLINE"):
        return "offline"
    return "unavailable"


def _contact_states(snapshot: dict) -> dict[str, tuple[str, int | None]]:
    """contact id -> (State, StateStartTimestamp in ms or None) from an agent snapshot."""
    contacts = snapshot.get("contacts")
    if contacts is None:
        return {}
    if not isinstance(contacts, list):
        raise InvalidEvent(REJECT_INVALID_FIELD, "Contacts must be a list")
    states: dict[str, tuple[str, int | None]] = {}
    for contact in contacts:
        if not isinstance(contact, dict):
            raise InvalidEvent(REJECT_INVALID_FIELD, "each of Contacts must be an object")
        contact_id = contact.get("contactid")
        if not isinstance(contact_id, str) or not contact_id:
            raise InvalidEvent(REJECT_MISSING_FIELD, "Contacts[].ContactId is required")
        started = contact.get("statestarttimestamp")
        started_ms = None if started in (None, "") else epoch_ms(started, "Contacts[].StateStartTimestamp")
        states[contact_id] = (_upper(contact.get("state")), started_ms)
    return states


def _agent_id(arn: str) -> str:
    """An agent ARN's trailing id (the same in contact events and the agent stream)."""
    return str(arn).rsplit("/agent/", 1)[-1]


def _when(value: object, fallback: object, name: str) -> int:
    """The event-specific timestamp, else the EventBridge envelope's `time`."""
    if value not in (None, ""):
        return epoch_ms(value, name)
    if fallback not in (None, ""):
        return epoch_ms(fallback, "time")
    raise InvalidEvent(REJECT_MISSING_FIELD, f"{name} (or the envelope's time) is required")


def _text(obj: dict, key: str, name: str) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise InvalidEvent(REJECT_MISSING_FIELD, f"{name} is required")
    if not isinstance(value, str):
        raise InvalidEvent(REJECT_INVALID_FIELD, f"{name} must be a string")
    return value


def _object(obj: dict, key: str) -> dict:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _upper(value: object) -> str:
    return value.upper() if isinstance(value, str) else ""
