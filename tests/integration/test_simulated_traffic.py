"""A simulator run with duplicates, reordering and malformed messages, through the embedded broker.

The pipeline's counters, windows and agent gauges must equal the values the
oracle computes directly from the generated events, both after an
uninterrupted run and after a worker is killed with SIGKILL mid-stream and
started again on the same state directory.
"""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import pytest

from streams.contract.events import parse_occurred_at
from streams.simulator import SimulationSettings, generate
from tests.harness import sample, wait_for
from tests.oracle import expected_from_events

pytestmark = pytest.mark.integration

UTC = ZoneInfo("UTC")


def simulated_backlog(seed: int, duration_seconds: float = 900, rate: float = 10.0, drain: bool = True):
    """Messages whose event times all lie in the recent past (so every window holds some)."""

    def run(start_ms: int):
        return list(generate(SimulationSettings(
            seed=seed, rate=rate, duration_seconds=duration_seconds, start_ms=start_ms, drain=drain,
            duplicate_ratio=0.02, reorder_ratio=0.05, reorder_max_skew_seconds=5.0, malformed_ratio=0.01)))

    now_ms = int(time.time() * 1000)
    probe = run(now_ms)
    newest = max(parse_occurred_at(m.event["occurred_at"]) for m in probe if m.event)
    # Same seed, shifted: the newest event lands 20 s before now.
    return run(now_ms - (newest - now_ms) - 20_000)


def differences(record: dict, expected) -> list[str]:
    """Where one /queues record differs from the oracle (windows read at the record's own time)."""
    found = []
    key = (record["queue"], record["channel"])
    if record["totals"] != expected.totals():
        found.append(f"{key} totals {record['totals']} != {expected.totals()}")
    at_ms = parse_occurred_at(record["at"])
    for window, values in record["windows"].items():
        want = expected.window(window, at_ms, UTC)
        for name, value in values.items():
            wanted = want[name]
            same = value == wanted if value is None or wanted is None else \
                value == pytest.approx(wanted, rel=1e-9, abs=1e-9)
            if not same:
                found.append(f"{key} {window} {name}: {value} != {wanted}")
    for name in ("waiting_contacts", "on_hold_contacts"):
        if record["current"][name] != 0:
            found.append(f"{key} current {name} = {record['current'][name]}")
    return found


def assert_matches_oracle(worker, messages) -> None:
    events = [m.event for m in messages if m.event is not None]
    queues, agents = expected_from_events(events)
    last_differences: list[str] = []

    def settled():
        status, body = worker.get_json("/queues")
        if status != 200:
            return False
        actual = {(r["queue"], r["channel"]): r for r in body["queues"]}
        if set(actual) != set(queues):
            last_differences[:] = [f"queues {sorted(actual)} != {sorted(queues)}"]
            return False
        # Outcomes become final as the watermark passes them (handle times last): poll until
        # every total and every window equals the oracle.
        last_differences[:] = [d for key, record in actual.items() for d in differences(record, queues[key])]
        return not last_differences
    try:
        wait_for(settled, 420, interval=0.5, message="every total and window equal to the oracle")
    except AssertionError:
        raise AssertionError("\n".join(last_differences[:30]) + "\n" + worker.log_tail()) from None

    metrics = worker.metrics()
    for (queue, channel), exp in queues.items():
        totals = exp.totals()
        labels = {"queue": queue, "channel": channel}
        assert sample(metrics, "callpulse_contacts_queued_total", **labels) == totals["contacts_queued"]
        assert sample(metrics, "callpulse_contacts_answered_total", **labels) == totals["contacts_answered"]
        assert sample(metrics, "callpulse_contacts_abandoned_total", **labels) == totals["contacts_abandoned"]
        assert sample(metrics, "callpulse_contacts_short_abandoned_total", **labels) == totals["contacts_short_abandoned"]
        assert sample(metrics, "callpulse_hold_abandons_total", **labels) == totals["hold_abandons"]
        for transfer_type, count in exp.transfers_by_type().items():
            assert sample(metrics, "callpulse_contacts_transferred_total", transfer_type=transfer_type,
                          **labels) == count
        answered_waits = sample(metrics, "callpulse_queue_wait_seconds_count", outcome="answered", **labels)
        assert answered_waits == totals["contacts_answered"]
        handles = [h.value_ms / 1000 for h in exp.happenings if h.what == "handle"]
        assert sample(metrics, "callpulse_handle_duration_seconds_count", **labels) == len(handles)
        assert sample(metrics, "callpulse_handle_duration_seconds_sum", **labels) == pytest.approx(sum(handles))
    by_state: dict[str, int] = {}
    for state in agents.values():
        by_state[state] = by_state.get(state, 0) + 1
    for state in ("available", "on_contact", "after_contact_work", "unavailable", "offline"):
        assert sample(metrics, "callpulse_agents", state=state) == by_state.get(state, 0), state


def test_simulated_traffic_matches_values_computed_from_the_events(stack):
    messages = simulated_backlog(seed=7)
    assert any(m.event is None for m in messages), "the run should include malformed messages"
    worker = stack.worker().start()
    stack.produce((m.key, m.value) for m in messages)
    assert_matches_oracle(worker, messages)

    metrics = worker.metrics()
    duplicates = sample(metrics, "callpulse_events_duplicate_total")
    unique_ids = {m.event["event_id"] for m in messages if m.event}
    processed = sum(v for (name, _), v in metrics.items() if name == "callpulse_events_total")
    rejected = sum(v for (name, _), v in metrics.items() if name == "callpulse_events_rejected_total")
    assert processed == len(unique_ids)
    assert processed + duplicates + rejected == len(messages)


def test_worker_killed_mid_stream_recovers_to_identical_values(stack):
    messages = simulated_backlog(seed=11)
    first = stack.worker("w1").start()
    stack.produce((m.key, m.value) for m in messages)

    def mid_stream():
        metrics = first.metrics()
        processed = sum(v for (name, _), v in metrics.items() if name == "callpulse_events_total")
        return processed >= len(messages) // 3
    wait_for(mid_stream, 300, interval=0.05, message="a third of the backlog processed")
    first.kill()

    second = stack.worker("w1")  # same name: same state directory and web port
    second.port = first.port
    second.start()
    assert_matches_oracle(second, messages)
