"""Agent states: the latest state of each agent by event time, for callpulse_agents{state}.

One small dict per agent (a Faust table value keyed by agent_id, the key of
agent events on the input topic). An older event never overwrites a newer
state, so arrival order does not matter; recent event ids are kept to drop
duplicates.
"""

from __future__ import annotations

from streams.contract.events import Event

RECENT_EVENT_IDS = 32


def apply_agent_event(state: dict | None, event: Event, offset: int) -> tuple[dict, str]:
    """Apply one agent.state_changed; returns (new state, "applied" | "duplicate" | "replay" | "stale")."""
    state = state or {"s": None, "t": 0, "ids": []}
    for event_id, seen_offset in state["ids"]:
        if event_id == event.event_id:
            return state, "replay" if seen_offset == offset else "duplicate"
    ids = state["ids"]
    ids.append([event.event_id, offset])
    if len(ids) > RECENT_EVENT_IDS:
        del ids[0]
    if event.occurred_at_ms < state["t"]:
        return state, "stale"
    state["s"] = event.state
    state["t"] = event.occurred_at_ms
    state["q"] = list(event.queues) if event.queues is not None else state.get("q")
    return state, "applied"
