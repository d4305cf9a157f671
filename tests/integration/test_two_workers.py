"""Two workers on one input: every queue is exported by exactly one worker, with the right values,
before and after one of them stops and starts again; /queues answers the same from either."""

from __future__ import annotations

import pytest

from tests.harness import wait_for
from tests.integration.test_simulated_traffic import simulated_backlog
from tests.oracle import expected_from_events

pytestmark = pytest.mark.integration


COUNTERS = {
    "callpulse_contacts_queued_total": "contacts_queued",
    "callpulse_contacts_answered_total": "contacts_answered",
    "callpulse_contacts_abandoned_total": "contacts_abandoned",
    "callpulse_contacts_short_abandoned_total": "contacts_short_abandoned",
    "callpulse_contacts_callback_total": "contacts_callback",
    "callpulse_holds_total": "holds",
    "callpulse_hold_abandons_total": "hold_abandons",
}


def exported_queued_totals(worker) -> dict[tuple[str, str], dict]:
    """{(queue, channel): {total name: value}} of the per-queue counters this worker exports."""
    exported: dict = {}
    for (name, labels), value in worker.metrics().items():
        if name in COUNTERS:
            labels = dict(labels)
            exported.setdefault((labels["queue"], labels["channel"]), {})[COUNTERS[name]] = value
    return exported


def each_queue_exported_once(workers, expected: dict) -> bool:
    """True when the workers' exports partition the queues exactly, with the expected totals."""
    seen: dict = {}
    for worker in workers:
        for key, value in exported_queued_totals(worker).items():
            if key in seen:
                return False  # exported twice
            seen[key] = value
    return seen == expected


def test_each_queue_is_exported_by_exactly_one_worker_across_a_restart(stack):
    messages = simulated_backlog(seed=3, duration_seconds=600)
    queues, _ = expected_from_events([m.event for m in messages if m.event])
    expected = {key: {name: exp.totals()[name] for name in COUNTERS.values()} for key, exp in queues.items()}

    w1 = stack.worker("w1").start()
    w2 = stack.worker("w2").start()
    stack.produce((m.key, m.value) for m in messages)

    def settled(*workers):
        def check():
            return all(w.get_json("/readyz")[0] == 200 for w in workers) and \
                each_queue_exported_once(workers, expected)
        return check

    wait_for(settled(w1, w2), 420, interval=0.5, message="both workers share the queues")
    assert exported_queued_totals(w1) and exported_queued_totals(w2), "both workers should own some queues"

    # Any worker answers /queues with every queue, fetching the others from their owner.
    for worker in (w1, w2):
        status, body = worker.get_json("/queues")
        assert status == 200
        assert {(r["queue"], r["channel"]): {name: r["totals"][name] for name in COUNTERS.values()}
                for r in body["queues"]} == expected
    # And /queues/{queue} finds the owner of every queue from either worker (the owner is the
    # queue's facts partition; Faust's router hashed the JSON-quoted key and missed some).
    for queue in sorted({name for name, _channel in expected}):
        wanted = {(queue, channel): totals for (name, channel), totals in expected.items() if name == queue}
        for worker in (w1, w2):
            status, body = worker.get_json(f"/queues/{queue}")
            assert status == 200, (worker.name, queue, body)
            assert {(queue, r["channel"]): {name: r["totals"][name] for name in COUNTERS.values()}
                    for r in body["channels"]} == wanted, (worker.name, queue)
    assert w1.get_json("/queues/no-such-queue")[0] == 404

    w2.stop()
    wait_for(settled(w1), 300, interval=0.5, message="the remaining worker exports every queue")

    w2_again = stack.worker("w2")
    w2_again.port = w2.port
    w2_again.start()
    wait_for(settled(w1, w2_again), 420, interval=0.5, message="the restarted worker takes its queues back")
    assert exported_queued_totals(w2_again), "the restarted worker should own some queues again"
