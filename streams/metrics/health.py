"""Pipeline health counted in-process: events by type, rejects, duplicates, late events, latency.

These live in the worker's own CollectorRegistry (never Faust's sensors) and
restart from zero with the process, as Prometheus counters may.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

from streams.contract.events import EVENT_TYPES, REJECT_REASONS
from streams.metrics import catalogue as cat

# `_created` samples only add series that dashboards never use.
disable_created_metrics()


class PipelineHealth:
    """The counters and the latency histogram the agents update per message."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(spec: cat.MetricSpec) -> Counter:
            return Counter(spec.sample_name, spec.help, spec.labels, registry=self.registry)

        self.events = counter(cat.EVENTS)
        self.events_rejected = counter(cat.EVENTS_REJECTED)
        self.events_duplicate = counter(cat.EVENTS_DUPLICATE)
        self.events_late = counter(cat.EVENTS_LATE)
        self.latency = Histogram(cat.PROCESSING_LATENCY.name, cat.PROCESSING_LATENCY.help,
                                 registry=self.registry, buckets=cat.PROCESSING_LATENCY_BUCKETS)
        # Known label values exist from the start, so "none yet" reads 0, not "no data".
        # The labelled children, looked up once: labels() costs more than inc() on the hot path.
        self._events_by_type = {event_type: self.events.labels(type=event_type) for event_type in EVENT_TYPES}
        for reason in REJECT_REASONS:
            self.events_rejected.labels(reason=reason)

    def processed(self, event_type: str, late: bool = False) -> None:
        self._events_by_type[event_type].inc()
        if late:
            self.events_late.inc()

    def rejected(self, reason: str) -> None:
        self.events_rejected.labels(reason=reason).inc()

    def duplicate(self) -> None:
        self.events_duplicate.inc()

    def observe_batch_latency(self, received_at_ms: int, events: int, now_ms: int) -> None:
        """Receive (the forwarder's fetch, wall clock) to state updated, once per event of a batch."""
        seconds = max(0.0, (now_ms - received_at_ms) / 1000)
        observe = self.latency.observe
        for _ in range(events):
            observe(seconds)
