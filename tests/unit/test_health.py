"""Pipeline health metrics: a batch counted at once exposes what per-event counting exposed."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.metrics import catalogue as cat
from streams.metrics.health import BatchHistogram, PipelineHealth


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]


def test_a_batch_observed_at_once_exposes_what_one_observe_per_event_did():
    values = [(0.0, 3), (0.0005, 2), (0.0007, 1), (0.1, 40), (0.30000000000000004, 7), (5.0, 1), (12.5, 2)]
    reference_registry = CollectorRegistry()
    reference = Histogram(cat.PROCESSING_LATENCY.name, cat.PROCESSING_LATENCY.help, registry=reference_registry,
                          buckets=cat.PROCESSING_LATENCY_BUCKETS)
    registry = CollectorRegistry()
    batched = BatchHistogram(cat.PROCESSING_LATENCY.name, cat.PROCESSING_LATENCY.help, cat.PROCESSING_LATENCY_BUCKETS)
    registry.register(batched)
    for value, count in values:
        for _ in range(count):
            reference.observe(value)
        batched.observe(value, count)
    expected = [line for line in exposition(reference_registry) if "_created" not in line]
    assert exposition(registry) == expected
    assert f'{cat.PROCESSING_LATENCY.name}_bucket{{le="0.0005"}} 5.0' in expected  # a bound is inclusive
    assert f"{cat.PROCESSING_LATENCY.name}_count 56.0" in expected


def test_a_batch_of_event_types_counts_each_type_and_the_late_ones():
    health = PipelineHealth()
    health.processed_batch(Counter({"contact.queued": 3, "agent.state_changed": 2}), late=1)
    health.processed_batch(Counter({"contact.queued": 1}), late=1)
    lines = exposition(health.registry)
    assert f'{cat.EVENTS.name}{{type="contact.queued"}} 4.0' in lines
    assert f'{cat.EVENTS.name}{{type="agent.state_changed"}} 2.0' in lines
    assert f"{cat.EVENTS_LATE.name} 2.0" in lines
    health.observe_batch_latency(received_at_ms=1_000, events=4, now_ms=1_250)
    assert f"{cat.PROCESSING_LATENCY.name}_count 4.0" in exposition(health.registry)
