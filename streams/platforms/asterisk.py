"""Asterisk app_queue queue_log lines to v1 events (mapping and reasons in docs/platforms.md).

One line: `epoch|callid|queue|agent|event|data1|data2|...`. The callid (the
caller channel's uniqueid) becomes the contact_id, the agent field (the queue
member name) the agent_id, and every queue call is a voice contact.

queue_log says nothing about an agent's state apart from pauses, logins and
memberships, so the converter remembers, per agent, which queues it serves,
where it is paused and which call it is on, and emits the resulting state
(available, unavailable, on_contact, offline) with every agent line and with
every CONNECT, COMPLETE* and transfer line.
It also remembers queue names seen in ENTERQUEUE lines to tell a transfer to a
queue from a transfer elsewhere, and each call's latest event time: queue_log
counts whole seconds, and a call that a transfer or flow-out sends into another
queue logs its ENTERQUEUE in the same second; that contact.queued is placed one
millisecond after the call's previous event, so ordering by time keeps
"transferred, then queued again". All memories are bounded (`max_entries`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

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
    REJECT_INVALID_TIMESTAMP,
    REJECT_MISSING_FIELD,
    REJECT_UNKNOWN_TYPE,
    Event,
    InvalidEvent,
)
from streams.platforms.common import DEFAULT_MAX_ENTRIES, BoundedDict, build_events

_EPOCH = re.compile(r"([0-9]{1,12})(?:\.([0-9]+))?")
_NONE = "NONE"

# Lines that are real queue_log events but carry nothing callpulse measures:
# queue/system bookkeeping, the caller's DID, ring attempts (an agent that does
# not answer is paused by autopause, which is logged as PAUSE), penalty changes.
IGNORED_EVENTS = frozenset({
    "QUEUESTART", "CONFIGRELOAD", "DID", "INFO", "SYSCOMPAT", "RINGNOANSWER", "RINGCANCELED",
    "AGENTDUMP", "PENALTY", "AGENTCALLED",
})

# Queues remembered per agent; no real queue member serves more.
_MAX_QUEUES_PER_AGENT = 256


@dataclass(slots=True)
class _AgentState:
    """What queue_log has told us about one queue member."""

    paused_in: dict[str, bool] = field(default_factory=dict)   # queue -> paused
    paused_all: bool = False
    logged_off: bool = False
    on_call: str | None = None

    def state(self) -> str:
        if self.on_call is not None:
            return "on_contact"
        if self.logged_off:
            return "offline"
        if self.paused_in:
            return "available" if not all(self.paused_in.values()) else "unavailable"
        return "unavailable" if self.paused_all else "available"

    def queues(self) -> list[str] | None:
        return sorted(self.paused_in) or None


@dataclass(slots=True, frozen=True)
class _Line:
    source: bytes
    occurred_at_ms: int
    callid: str
    queue: str
    agent: str
    event: str
    data: list[str]


class AsteriskConverter:
    """Converts one queue_log line at a time; keep one instance per log being read.

    >>> converter = AsteriskConverter()
    >>> [e.type for e in converter.convert("1795334400|1795334400.17|support|NONE|ENTERQUEUE||+4930123|1")]
    ['contact.queued']

    Options:
    - queue_extensions: dialplan extension -> queue name, for queues reached
      by a number (exten 7001 runs Queue(support)). A BLINDTRANSFER to one of
      them, or to the name of a queue seen in an ENTERQUEUE line (FreePBX names
      queues by their extension), is a re-queue, not a transfer out.
    - callback_keys: EXITWITHKEY digits that mean "call me back" on this system;
      those exits become contact.callback_requested, every other exit a flow-out.
    - max_internal_digits: a transfer target with more digits (or a leading +)
      is an external number.
    - max_entries: bound of the agent and queue memories.
    """

    platform = "asterisk"

    def __init__(
        self,
        *,
        queue_extensions: Mapping[str, str] | None = None,
        callback_keys: Iterable[str] = (),
        max_internal_digits: int = 6,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.callback_keys = frozenset(callback_keys)
        self.max_internal_digits = max_internal_digits
        self.queue_extensions = dict(queue_extensions or {})
        self._queues: BoundedDict[str, bool] = BoundedDict(max_entries)
        self._agents: BoundedDict[str, _AgentState] = BoundedDict(max_entries)
        self._call_times: BoundedDict[str, int] = BoundedDict(max_entries)
        self._handlers: dict[str, Callable[[_Line], list[dict]]] = {
            "ENTERQUEUE": self._enterqueue,
            "CONNECT": self._connect,
            "ABANDON": self._abandon,
            "EXITWITHTIMEOUT": self._flow_out,
            "EXITEMPTY": self._flow_out,
            "EXITWITHKEY": self._exit_with_key,
            "COMPLETEAGENT": self._complete,
            "COMPLETECALLER": self._complete,
            "BLINDTRANSFER": self._blind_transfer,
            "TRANSFER": self._blind_transfer,
            "ATTENDEDTRANSFER": self._attended_transfer,
            "PAUSE": self._pause,
            "UNPAUSE": self._pause,
            "PAUSEALL": self._pause_all,
            "UNPAUSEALL": self._pause_all,
            "ADDMEMBER": self._membership,
            "REMOVEMEMBER": self._membership,
            "AGENTLOGIN": self._login,
            "AGENTCALLBACKLOGIN": self._login,
            "AGENTLOGOFF": self._login,
            "AGENTCALLBACKLOGOFF": self._login,
        }

    @property
    def tracked_agents(self) -> int:
        return len(self._agents)

    @property
    def tracked_queues(self) -> int:
        return len(self._queues)

    @property
    def tracked_calls(self) -> int:
        return len(self._call_times)

    def convert(self, record: bytes | str | dict) -> list[Event]:
        """One queue_log line to v1 events; [] for blank lines and events callpulse ignores."""
        line = self._split(record)
        if line is None:
            return []
        handler = self._handlers.get(line.event)
        if handler is None:
            if line.event in IGNORED_EVENTS:
                return []
            raise InvalidEvent(REJECT_UNKNOWN_TYPE, f"unknown queue_log event {line.event[:64]!r}")
        return build_events(self.platform, [(line.source, draft) for draft in handler(line)])

    # -- parsing ---------------------------------------------------------------------------

    def _split(self, record: bytes | str | dict) -> _Line | None:
        if isinstance(record, bytes):
            text = record.decode("utf-8", "surrogateescape")
        elif isinstance(record, str):
            text = record
        else:
            raise InvalidEvent(REJECT_INVALID_FIELD, "expected one queue_log line (bytes or str)")
        text = text.strip()
        if not text:
            return None
        fields = text.split("|")
        if len(fields) < 5:
            raise InvalidEvent(REJECT_MISSING_FIELD, "expected epoch|callid|queue|agent|event|data...")
        epoch, callid, queue, agent, event, *data = (f.strip() for f in fields)
        match = _EPOCH.fullmatch(epoch)
        if match is None:
            raise InvalidEvent(REJECT_INVALID_TIMESTAMP, f"epoch {epoch[:64]!r} is not seconds since 1970")
        seconds, fraction = match.group(1), match.group(2) or ""
        occurred_at_ms = int(seconds) * 1000 + int(fraction[:3].ljust(3, "0"))
        if not event:
            raise InvalidEvent(REJECT_MISSING_FIELD, "the event field is empty")
        source = text.encode("utf-8", "surrogateescape")
        return _Line(source, occurred_at_ms, callid, queue, agent, event.upper(), data)

    def _call(self, line: _Line) -> dict:
        """The fields every contact event of this line shares; the line must name a call and queue."""
        if line.callid in ("", _NONE):
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{line.event} without a callid")
        if line.queue in ("", _NONE):
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{line.event} without a queue")
        occurred_at_ms = line.occurred_at_ms
        previous_ms = self._call_times.get(line.callid)
        if line.event == "ENTERQUEUE" and previous_ms is not None and previous_ms >= occurred_at_ms:
            occurred_at_ms = previous_ms + 1   # after the transfer or exit that sent it here
        self._call_times[line.callid] = occurred_at_ms
        return {"contact_id": line.callid, "occurred_at": occurred_at_ms}

    @staticmethod
    def _member(line: _Line) -> str:
        if line.agent in ("", _NONE):
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{line.event} without an agent")
        return line.agent

    def _agent(self, name: str) -> _AgentState:
        agent = self._agents.get(name)
        if agent is None:
            agent = _AgentState()
        self._agents[name] = agent
        return agent

    def _agent_event(self, line: _Line, name: str, contact_id: str | None = None) -> dict:
        agent = self._agent(name)
        return {
            "type": AGENT_STATE_CHANGED,
            "occurred_at": line.occurred_at_ms,
            "agent_id": name,
            "state": agent.state(),
            "queues": agent.queues(),
            "contact_id": contact_id,
        }

    # -- calls -----------------------------------------------------------------------------

    def _enterqueue(self, line: _Line) -> list[dict]:
        call = self._call(line)
        self._queues[line.queue] = True
        return [{**call, "type": CONTACT_QUEUED, "queue": line.queue, "channel": "voice"}]

    def _connect(self, line: _Line) -> list[dict]:
        """CONNECT's first datum is the queue wait Asterisk calls "holdtime"; it is not agent hold."""
        call = self._call(line)
        name = self._member(line)
        agent = self._agent(name)
        agent.on_call = line.callid
        agent.paused_in.setdefault(line.queue, False)
        self._trim(agent)
        return [
            {**call, "type": CONTACT_ANSWERED, "agent_id": name},
            self._agent_event(line, name, contact_id=line.callid),
        ]

    def _abandon(self, line: _Line) -> list[dict]:
        return [{**self._call(line), "type": CONTACT_ABANDONED}]

    def _flow_out(self, line: _Line) -> list[dict]:
        """The caller left the queue alive, without an agent: routed on by the dialplan.

        Not an abandon (the caller did not hang up) and not a callback: a blind
        transfer out of the queue by the system, then the end of the contact as
        far as the queues can see. A later ENTERQUEUE of the same call is a new
        queue visit.
        """
        call = self._call(line)
        return [
            {**call, "type": CONTACT_TRANSFERRED, "transfer_type": "blind"},
            {**call, "type": CONTACT_ENDED, "disconnected_by": "system"},
        ]

    def _exit_with_key(self, line: _Line) -> list[dict]:
        key = line.data[0] if line.data else ""
        if key and key in self.callback_keys:
            call = self._call(line)
            return [
                {**call, "type": CONTACT_CALLBACK_REQUESTED},
                {**call, "type": CONTACT_ENDED, "disconnected_by": "system"},
            ]
        return self._flow_out(line)

    def _complete(self, line: _Line) -> list[dict]:
        """queue_log has no wrap-up event: wrap-up ends with the call, so handle time is talk time."""
        call = self._call(line)
        disconnected_by = "agent" if line.event == "COMPLETEAGENT" else "customer"
        drafts = [
            {**call, "type": CONTACT_ENDED, "disconnected_by": disconnected_by},
            {**call, "type": CONTACT_WRAPUP_ENDED},
        ]
        return drafts + self._agent_released(line)

    def _blind_transfer(self, line: _Line) -> list[dict]:
        """BLINDTRANSFER / TRANSFER: exten|context|waittime|talktime|origposition."""
        call = self._call(line)
        if not line.data or not line.data[0]:
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{line.event} without a target extension")
        exten = line.data[0]
        to_queue = self.queue_extensions.get(exten) or (exten if exten in self._queues else None)
        if to_queue is not None:
            # The call re-enters that queue: the next ENTERQUEUE continues this contact.
            transferred = {**call, "type": CONTACT_TRANSFERRED, "transfer_type": "blind", "to_queue": to_queue}
            return [transferred] + self._agent_released(line)
        transfer_type = "external" if self._is_external(exten) else "blind"
        return self._transferred_away(line, call, transfer_type)

    def _attended_transfer(self, line: _Line) -> list[dict]:
        """ATTENDEDTRANSFER: BRIDGE|bridge or APP|app take one datum, LINK|chan1|chan2 two."""
        call = self._call(line)
        method = line.data[0].upper() if line.data else ""
        needed = {"BRIDGE": 2, "APP": 2, "LINK": 3}.get(method)
        if needed is None:
            raise InvalidEvent(REJECT_INVALID_FIELD,
                               f"ATTENDEDTRANSFER method {method[:32]!r} is not BRIDGE, APP or LINK")
        if len(line.data) < needed:
            raise InvalidEvent(REJECT_MISSING_FIELD, f"ATTENDEDTRANSFER {method} without its target")
        return self._transferred_away(line, call, "warm")

    def _transferred_away(self, line: _Line, call: dict, transfer_type: str) -> list[dict]:
        """The call left the queues with the transfer: the agent's part, and its handle time, end here."""
        return [
            {**call, "type": CONTACT_TRANSFERRED, "transfer_type": transfer_type},
            {**call, "type": CONTACT_ENDED, "disconnected_by": "agent"},
            {**call, "type": CONTACT_WRAPUP_ENDED},
        ] + self._agent_released(line)

    def _agent_released(self, line: _Line) -> list[dict]:
        if line.agent in ("", _NONE):
            return []
        agent = self._agent(line.agent)
        if agent.on_call == line.callid:
            agent.on_call = None
        return [self._agent_event(line, line.agent)]

    def _is_external(self, exten: str) -> bool:
        digits = exten[1:] if exten.startswith("+") else exten
        return digits.isdigit() and (exten.startswith("+") or len(digits) > self.max_internal_digits)

    # -- agents ----------------------------------------------------------------------------

    def _pause(self, line: _Line) -> list[dict]:
        name = self._member(line)
        agent = self._agent(name)
        paused = line.event == "PAUSE"
        if line.queue not in ("", _NONE):
            agent.paused_in[line.queue] = paused
            self._trim(agent)
        else:
            agent.paused_all = paused
        if not paused:
            agent.paused_all = False
            agent.logged_off = False
        return [self._agent_event(line, name)]

    def _pause_all(self, line: _Line) -> list[dict]:
        name = self._member(line)
        agent = self._agent(name)
        paused = line.event == "PAUSEALL"
        agent.paused_all = paused
        for queue in agent.paused_in:
            agent.paused_in[queue] = paused
        if not paused:
            agent.logged_off = False
        return [self._agent_event(line, name)]

    def _membership(self, line: _Line) -> list[dict]:
        name = self._member(line)
        if line.queue in ("", _NONE):
            raise InvalidEvent(REJECT_MISSING_FIELD, f"{line.event} without a queue")
        agent = self._agent(name)
        if line.event == "ADDMEMBER":
            agent.paused_in.setdefault(line.queue, False)
            agent.logged_off = False
            self._trim(agent)
        else:
            agent.paused_in.pop(line.queue, None)
            if not agent.paused_in:
                agent.logged_off = True
        return [self._agent_event(line, name)]

    def _login(self, line: _Line) -> list[dict]:
        name = self._member(line)
        agent = self._agent(name)
        agent.logged_off = line.event.endswith("LOGOFF")
        if agent.logged_off:
            agent.on_call = None
        return [self._agent_event(line, name)]

    @staticmethod
    def _trim(agent: _AgentState) -> None:
        while len(agent.paused_in) > _MAX_QUEUES_PER_AGENT:
            del agent.paused_in[next(iter(agent.paused_in))]
