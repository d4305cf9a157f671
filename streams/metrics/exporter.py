"""The /metrics exporter: queue, agent and target series built at scrape time from owned state.

Nothing per queue is cached between scrapes: each scrape reads the queues
table for the partitions this worker actively owns at that moment, so after a
rebalance a worker stops exporting the queues it lost at once and the new
owner starts as soon as its recovery has finished.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streams.config import CallpulseConfig
from streams.contract.events import AGENT_STATES
from streams.lifecycle.facts import split_queue_key
from streams.metrics import catalogue as cat
from streams.metrics.catalogue import (
    FIRST_RESPONSE_BUCKETS,
    HANDLE_BUCKETS,
    HOLD_BUCKETS,
    WINDOWS,
)
from streams.queues import windows as qw

# Window gauges: metric spec -> key of queues.windows.window_values().
WINDOW_METRICS = (
    (cat.WINDOW_QUEUED, "contacts_queued"),
    (cat.WINDOW_ANSWERED, "contacts_answered"),
    (cat.WINDOW_ABANDONED, "contacts_abandoned"),
    (cat.WINDOW_SHORT_ABANDONED, "contacts_short_abandoned"),
    (cat.WINDOW_ABANDON_RATIO, "abandon_ratio"),
    (cat.WINDOW_SERVICE_LEVEL, "service_level_ratio"),
    (cat.WINDOW_ANSWER_WAIT, "answer_wait_seconds"),
    (cat.WINDOW_HOLDS, "holds"),
    (cat.WINDOW_HOLD_ABANDONS, "hold_abandons"),
    (cat.WINDOW_AVERAGE_HOLD, "average_hold_seconds"),
    (cat.WINDOW_TRANSFERS, "transfers"),
    (cat.WINDOW_TRANSFER_RATIO, "transfer_ratio"),
    (cat.WINDOW_AVERAGE_HANDLE, "average_handle_seconds"),
)
COUNTER_METRICS = (
    (cat.CONTACTS_QUEUED, "queued"),
    (cat.CONTACTS_ANSWERED, "answered"),
    (cat.CONTACTS_ABANDONED, "abandoned"),
    (cat.CONTACTS_SHORT_ABANDONED, "short_abandoned"),
    (cat.CONTACTS_CALLBACK, "callback"),
    (cat.HOLDS, "holds"),
    (cat.HOLD_ABANDONS, "hold_abandons"),
    (cat.CONTACTS_EXPIRED, "expired"),
)
TARGET_METRICS = (
    (cat.TARGET_SERVICE_LEVEL, "target_service_level_ratio"),
    (cat.SERVICE_LEVEL_THRESHOLD, "service_level_threshold_seconds"),
    (cat.TARGET_ABANDON, "target_abandon_ratio"),
    (cat.TARGET_MAX_WAIT, "target_max_wait_seconds"),
)


def _family(spec: cat.MetricSpec) -> Metric:
    if spec.kind is cat.Kind.COUNTER:
        return CounterMetricFamily(spec.sample_name, spec.help, labels=spec.labels)
    if spec.kind is cat.Kind.HISTOGRAM:
        return HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


def _histogram_buckets(stored: dict, edges: Iterable[float]) -> tuple[list[tuple[str, float]], float, int]:
    """Cumulative (le, count) pairs from the per-edge counts a queue state stores."""
    counts = stored["b"]
    cumulative = 0
    buckets = []
    stored_edges = sorted((float(k), v) for k, v in counts.items() if k != "+Inf")
    i = 0
    for edge in edges:
        while i < len(stored_edges) and stored_edges[i][0] <= edge:
            cumulative += stored_edges[i][1]
            i += 1
        buckets.append((repr(float(edge)), cumulative))
    total = sum(counts.values())
    buckets.append(("+Inf", total))
    return buckets, stored["s"], total


class QueueCollector(Collector):
    """Builds every per-queue, agent and target series from the worker's owned state."""

    def __init__(self, queue_states: Callable[[], list[tuple[str, dict]]],
                 agent_states: Callable[[], list[dict]], config: CallpulseConfig,
                 wait_edges: tuple[float, ...], now_ms: Callable[[], int], max_wait_age_ms: int,
                 tracked_contacts: Callable[[], int], newest_event_ms: Callable[[], int | None],
                 consumer_lag: Callable[[], int | None] = lambda: None) -> None:
        self.queue_states = queue_states
        self.agent_states = agent_states
        self.config = config
        self.wait_edges = wait_edges
        self.now_ms = now_ms
        self.max_wait_age_ms = max_wait_age_ms
        self.tracked_contacts = tracked_contacts
        self.newest_event_ms = newest_event_ms
        self.consumer_lag = consumer_lag

    def describe(self) -> list:
        return []

    def collect(self) -> Iterable[Metric]:
        now = self.now_ms()
        zone = self.config.zone
        families = {spec.name: _family(spec) for spec, _ in COUNTER_METRICS + WINDOW_METRICS + TARGET_METRICS}
        for spec in (cat.CONTACTS_TRANSFERRED, cat.QUEUE_WAIT, cat.HOLD_DURATION, cat.HANDLE_DURATION,
                     cat.CHAT_FIRST_RESPONSE, cat.QUEUE_WAITING, cat.QUEUE_OLDEST_WAIT, cat.QUEUE_ON_HOLD,
                     cat.QUEUE_ACTIVE, cat.QUEUE_ESTIMATED_WAIT):
            families[spec.name] = _family(spec)

        for key, state in sorted(self.queue_states()):
            queue, channel = split_queue_key(key)
            labels = [queue, channel]
            n = state["n"]
            for spec, name in COUNTER_METRICS:
                families[spec.name].add_metric(labels, n[name])
            for transfer_type, count in sorted(n["tr"].items()):
                families[cat.CONTACTS_TRANSFERRED.name].add_metric(labels + [transfer_type], count)
            h = state["h"]
            for outcome, stored in (("answered", h["wait_answered"]), ("abandoned", h["wait_abandoned"])):
                buckets, total_sum, _ = _histogram_buckets(stored, self.wait_edges)
                families[cat.QUEUE_WAIT.name].add_metric(labels + [outcome], buckets, total_sum)
            for spec, stored, edges in ((cat.HOLD_DURATION, h["hold"], HOLD_BUCKETS),
                                        (cat.HANDLE_DURATION, h["handle"], HANDLE_BUCKETS),
                                        (cat.CHAT_FIRST_RESPONSE, h["first_response"], FIRST_RESPONSE_BUCKETS)):
                buckets, total_sum, _ = _histogram_buckets(stored, edges)
                families[spec.name].add_metric(labels, buckets, total_sum)

            waiting, oldest = qw.waiting_now(state, now, self.max_wait_age_ms)
            families[cat.QUEUE_WAITING.name].add_metric(labels, waiting)
            families[cat.QUEUE_OLDEST_WAIT.name].add_metric(labels, oldest)
            families[cat.QUEUE_ON_HOLD.name].add_metric(labels, state["hold"])
            families[cat.QUEUE_ACTIVE.name].add_metric(labels, state["active"])

            vectors = {w: qw.window_vector(state, w, now, zone) for w in WINDOWS}
            estimate = qw.estimated_wait_seconds(waiting, vectors["15m"])
            if estimate is not None:
                families[cat.QUEUE_ESTIMATED_WAIT.name].add_metric(labels, estimate)
            for window, vector in vectors.items():
                values = qw.window_values(vector)
                for spec, name in WINDOW_METRICS:
                    if values[name] is not None:
                        families[spec.name].add_metric(labels + [window], values[name])

            targets = self.config.targets_for(queue)
            for spec, name in TARGET_METRICS:
                families[spec.name].add_metric(labels, getattr(targets, name))

        yield from families.values()

        agents = GaugeMetricFamily(cat.AGENTS.name, cat.AGENTS.help, labels=cat.AGENTS.labels)
        tally = Tally(state["s"] for state in self.agent_states())
        for agent_state in AGENT_STATES:
            agents.add_metric([agent_state], tally.get(agent_state, 0))
        yield agents

        tracked = GaugeMetricFamily(cat.TRACKED_CONTACTS.name, cat.TRACKED_CONTACTS.help)
        tracked.add_metric([], self.tracked_contacts())
        yield tracked

        lag_messages = self.consumer_lag()
        if lag_messages is not None:
            lag_family = GaugeMetricFamily(cat.CONSUMER_LAG.name, cat.CONSUMER_LAG.help)
            lag_family.add_metric([], lag_messages)
            yield lag_family

        newest = self.newest_event_ms()
        if newest is not None:
            lag = GaugeMetricFamily(cat.EVENT_TIME_LAG.name, cat.EVENT_TIME_LAG.help)
            lag.add_metric([], max(0.0, (now - newest) / 1000))
            yield lag
