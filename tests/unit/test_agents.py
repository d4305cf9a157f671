"""Agent states: the latest state by event time wins in any arrival order; duplicates drop out."""

from __future__ import annotations

import copy
import itertools

import pytest

from streams.agents import RECENT_EVENT_IDS, apply_agent_event
from streams.contract.events import AGENT_STATE_CHANGED, Event

T0_MS = 1_795_334_400_000


def agent_event(state: str, t_seconds: float, event_id: str | None = None, queues=None) -> Event:
    return Event(event_id=event_id or f"a-1/{state}/{t_seconds}", type=AGENT_STATE_CHANGED,
                 occurred_at_ms=T0_MS + round(t_seconds * 1000), agent_id="a-1", state=state,
                 queues=tuple(queues) if queues is not None else None)


def run(*events: Event) -> tuple[dict | None, list[str]]:
    state, results = None, []
    for offset, event in enumerate(events):
        state, result = apply_agent_event(state, event, offset)
        results.append(result)
    return state, results


def test_first_event_sets_the_state():
    state, results = run(agent_event("available", 0, queues=["support"]))

    assert results == ["applied"]
    assert (state["s"], state["t"], state["q"]) == ("available", T0_MS, ["support"])


def test_newer_event_replaces_the_state():
    state, results = run(agent_event("available", 0), agent_event("on_contact", 10))

    assert results == ["applied", "applied"]
    assert (state["s"], state["t"]) == ("on_contact", T0_MS + 10_000)


def test_older_event_is_stale_and_leaves_the_state():
    state, results = run(agent_event("on_contact", 10), agent_event("available", 5))

    assert results == ["applied", "stale"]
    assert (state["s"], state["t"]) == ("on_contact", T0_MS + 10_000)


def test_latest_state_by_event_time_wins_in_every_arrival_order():
    events = [agent_event("available", 0), agent_event("on_contact", 10),
              agent_event("after_contact_work", 70), agent_event("unavailable", 95),
              agent_event("offline", 300)]

    for order in itertools.permutations(events):
        state, _ = run(*order)
        assert (state["s"], state["t"]) == ("offline", T0_MS + 300_000)


def test_repeated_event_id_at_another_offset_is_a_duplicate():
    state, _ = run(agent_event("available", 0, event_id="e-1"))
    before = copy.deepcopy(state)

    state, result = apply_agent_event(state, agent_event("offline", 50, event_id="e-1"), offset=7)

    assert result == "duplicate"
    assert state == before


def test_same_event_id_at_the_same_offset_is_a_replay():
    state, _ = run(agent_event("available", 0, event_id="e-1"))
    before = copy.deepcopy(state)

    state, result = apply_agent_event(state, agent_event("available", 0, event_id="e-1"), offset=0)

    assert result == "replay"
    assert state == before


def test_duplicate_of_a_stale_event_is_still_recognised():
    state, results = run(agent_event("on_contact", 10), agent_event("available", 5, event_id="old"))

    state, result = apply_agent_event(state, agent_event("available", 5, event_id="old"), offset=9)

    assert results[1] == "stale"
    assert result == "duplicate"


def test_recent_event_ids_are_a_bounded_ring():
    events = [agent_event("available" if i % 2 else "on_contact", i, event_id=f"e-{i}")
              for i in range(RECENT_EVENT_IDS + 8)]
    state, _ = run(*events)

    assert len(state["ids"]) == RECENT_EVENT_IDS
    assert [i for i, _ in state["ids"]] == [f"e-{i}" for i in range(8, RECENT_EVENT_IDS + 8)]
    _, newest = apply_agent_event(state, events[-1], offset=1000)
    _, forgotten = apply_agent_event(state, events[0], offset=1001)
    assert newest == "duplicate"
    assert forgotten == "stale"  # no longer known as a duplicate, but too old to change anything


@pytest.mark.parametrize(("second_queues", "expected"), [
    (None, ["support", "billing"]),
    (["billing"], ["billing"]),
    ([], []),
])
def test_queues_are_kept_until_an_event_names_them_again(second_queues, expected):
    state, _ = run(agent_event("available", 0, queues=["support", "billing"]),
                   agent_event("on_contact", 10, queues=second_queues))

    assert state["q"] == expected
