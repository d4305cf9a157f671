"""Expected values computed directly from generated events, independently of streams.lifecycle/queues.

A plain in-order walk over each contact's events (deduplicated by event_id,
sorted by occurred_at), applying the definitions of the contract and the
README. Integration tests compare the running pipeline against it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from streams.contract.events import parse_occurred_at

SAME_TIME_ORDER = {
    "contact.queued": 0, "contact.answered": 1, "chat.message": 2, "contact.hold_started": 3,
    "contact.hold_ended": 4, "contact.transferred": 5, "contact.abandoned": 6,
    "contact.callback_requested": 6, "contact.ended": 7, "contact.wrapup_ended": 8,
}
WINDOW_SECONDS = {"5m": 300, "15m": 900, "1h": 3600}


@dataclass
class Happening:
    """One counted thing: what, when (ms), and its numbers."""

    what: str
    t_ms: int
    value_ms: int = 0
    detail: str = ""


@dataclass
class QueueExpectation:
    happenings: list[Happening] = field(default_factory=list)

    def add(self, what: str, t_ms: int, value_ms: int = 0, detail: str = "") -> None:
        self.happenings.append(Happening(what, t_ms, value_ms, detail))

    def totals(self) -> dict:
        count = defaultdict(int)
        for h in self.happenings:
            count[h.what] += 1
        return {
            "contacts_queued": count["queued"],
            "contacts_answered": count["answered"],
            "contacts_abandoned": count["abandoned"],
            "contacts_short_abandoned": count["short_abandoned"],
            "contacts_callback": count["callback"],
            "holds": count["hold"],
            "hold_abandons": count["hold_abandon"],
            "transfers": count["transfer"],
            "contacts_expired": 0,
        }

    def transfers_by_type(self) -> dict:
        out = defaultdict(int)
        for h in self.happenings:
            if h.what == "transfer":
                out[h.detail] += 1
        return dict(out)

    def window(self, window: str, now_ms: int, zone: ZoneInfo, sl_threshold_s: float = 20.0) -> dict:
        if window == "today":
            day = datetime.fromtimestamp(now_ms / 1000, zone).date()
            chosen = [h for h in self.happenings
                      if datetime.fromtimestamp(h.t_ms / 1000, zone).date() == day]
        else:
            newest = now_ms // 1000 // 10 * 10
            oldest = newest - WINDOW_SECONDS[window]
            chosen = [h for h in self.happenings if oldest <= h.t_ms // 1000 // 10 * 10 <= newest]
        by = defaultdict(list)
        for h in chosen:
            by[h.what].append(h)
        answered, abandoned = len(by["answered"]), len(by["abandoned"])
        offered = answered + abandoned
        in_sl = sum(1 for h in by["answered"] if h.value_ms <= sl_threshold_s * 1000)

        def mean(items):
            return sum(h.value_ms for h in items) / 1000 / len(items) if items else None

        return {
            "contacts_queued": len(by["queued"]),
            "contacts_answered": answered,
            "contacts_abandoned": abandoned,
            "contacts_short_abandoned": len(by["short_abandoned"]),
            "abandon_ratio": abandoned / offered if offered else None,
            "service_level_ratio": in_sl / offered if offered else None,
            "answer_wait_seconds": mean(by["answered"]),
            "holds": len(by["hold"]),
            "hold_abandons": len(by["hold_abandon"]),
            "average_hold_seconds": mean(by["hold_end"]),
            "transfers": len(by["transfer"]),
            "transfer_ratio": len(by["transfer"]) / answered if answered else None,
            "average_handle_seconds": mean(by["handle"]),
        }


def expected_from_events(events: list[dict], short_abandon_s: float = 5.0) -> tuple[dict, dict]:
    """({(queue, channel): QueueExpectation}, {agent_id: latest state}) for v1 event dicts."""
    unique = {}
    for event in events:
        unique.setdefault(event["event_id"], event)
    per_contact = defaultdict(list)
    agents = {}
    for event in unique.values():
        t = parse_occurred_at(event["occurred_at"])
        if event["type"] == "agent.state_changed":
            previous = agents.get(event["agent_id"])
            if previous is None or t >= previous[0]:
                agents[event["agent_id"]] = (t, event["state"])
        else:
            per_contact[event["contact_id"]].append((t, SAME_TIME_ORDER[event["type"]], event["event_id"], event))
    queues: dict = defaultdict(QueueExpectation)
    for contact_events in per_contact.values():
        contact_events.sort(key=lambda item: item[:3])
        _walk([(t, e) for t, _, _, e in contact_events], queues, short_abandon_s)
    return dict(queues), {agent: state for agent, (_, state) in agents.items()}


def _walk(events: list[tuple[int, dict]], queues, short_abandon_s: float) -> None:
    status = "new"
    queue = channel = None
    enqueued = answered_at = hold_start = None
    answered_from = None
    first_response_pending = handle_pending = False
    for t, event in events:
        kind = event["type"]
        if kind == "contact.queued":
            if status == "on_hold":
                queues[(answered_from, channel)].add("hold_end", t, t - hold_start)
            queue, channel, enqueued, status = event["queue"], event["channel"], t, "waiting"
            queues[(queue, channel)].add("queued", t)
        elif kind == "contact.answered" and status == "waiting":
            queues[(queue, channel)].add("answered", t, t - enqueued)
            answered_from, answered_at, status = queue, t, "connected"
            first_response_pending = channel == "chat"
            handle_pending = True
        elif kind in ("contact.abandoned", "contact.ended") and status == "waiting":
            wait = t - enqueued
            queues[(queue, channel)].add("short_abandoned" if wait < short_abandon_s * 1000 else "abandoned", t, wait)
            status = "done" if kind == "contact.abandoned" else "ended"
        elif kind == "contact.transferred" and status == "waiting":
            status = "new"  # a flow-out: left the queue, neither answered nor abandoned
        elif kind == "contact.callback_requested" and status == "waiting":
            queues[(queue, channel)].add("callback", t)
            status = "new"
        elif kind == "contact.hold_started" and status == "connected":
            queues[(answered_from, channel)].add("hold", t)
            hold_start, status = t, "on_hold"
        elif kind == "contact.hold_ended" and status == "on_hold":
            queues[(answered_from, channel)].add("hold_end", t, t - hold_start)
            status = "connected"
        elif kind == "contact.transferred" and status in ("connected", "on_hold"):
            if status == "on_hold":
                queues[(answered_from, channel)].add("hold_end", t, t - hold_start)
            queues[(answered_from, channel)].add("transfer", t, detail=event["transfer_type"])
            status = "transferring"
        elif kind == "contact.answered" and status == "transferring":
            status = "connected"
        elif kind == "contact.ended" and status == "on_hold":
            queues[(answered_from, channel)].add("hold_end", t, t - hold_start)
            if event.get("disconnected_by") in (None, "customer"):
                queues[(answered_from, channel)].add("hold_abandon", t)
            status = "ended"
        elif kind == "contact.ended":
            status = "ended"
        elif kind == "contact.wrapup_ended" and handle_pending:
            queues[(answered_from, channel)].add("handle", t, t - answered_at)
            handle_pending = False
        elif kind == "chat.message" and first_response_pending and event.get("sender") == "agent" \
                and status in ("connected", "on_hold"):
            first_response_pending = False
