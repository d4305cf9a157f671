"""Small PromQL builders so dashboards and alerts spell aggregations the same way.

Conventions they encode (see docs/operations.md): per-queue gauges are read
with `max by (queue, channel)` because after a rebalance two workers may briefly
export the same queue; counters are summed over workers; histogram quantiles
sum the buckets' rates by `le`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from streams.metrics.catalogue import QUEUE_LABELS, Kind, MetricSpec

# Grafana's range for rate() over a panel: at least four scrape intervals.
RATE_INTERVAL = "$__rate_interval"
# Matchers the drill-down dashboard applies to every per-queue series.
QUEUE_FILTER = ('queue=~"$queue"', 'channel=~"$channel"')


def selector(metric: MetricSpec | str, matchers: Iterable[str] = (), suffix: str = "") -> str:
    """`name{m1, m2}`; `suffix` picks a histogram series (`_bucket`, `_sum`, `_count`)."""
    name = (metric.name if isinstance(metric, MetricSpec) else metric) + suffix
    matchers = tuple(matchers)
    return f"{name}{{{', '.join(matchers)}}}" if matchers else name


def by(aggregation: str, labels: Sequence[str], expr: str) -> str:
    """`agg by (labels) (expr)`; no labels gives `agg (expr)`."""
    if labels:
        return f"{aggregation} by ({', '.join(labels)}) ({expr})"
    return f"{aggregation} ({expr})"


def gauge(metric: MetricSpec, matchers: Iterable[str] = (), labels: Sequence[str] = QUEUE_LABELS) -> str:
    """A per-queue gauge, de-duplicated over workers with max."""
    assert metric.kind is Kind.GAUGE, metric.name
    return by("max", labels, selector(metric, matchers))


def rate(metric: MetricSpec, window: str, matchers: Iterable[str] = (), labels: Sequence[str] = QUEUE_LABELS) -> str:
    """Per-second rate of a counter, summed over workers."""
    assert metric.kind is Kind.COUNTER, metric.name
    return by("sum", labels, f"rate({selector(metric, matchers)}[{window}])")


def quantile(
    q: float,
    metric: MetricSpec,
    window: str,
    matchers: Iterable[str] = (),
    labels: Sequence[str] = QUEUE_LABELS,
) -> str:
    """The q-quantile of a histogram over `window`, per `labels`."""
    assert metric.kind is Kind.HISTOGRAM, metric.name
    buckets = f"rate({selector(metric, matchers, '_bucket')}[{window}])"
    return f"histogram_quantile({q:g}, {by('sum', (*labels, 'le'), buckets)})"


def join_target(value: str, operator: str, target: MetricSpec) -> str:
    """Keep the series of `value` that compare badly with their queue's target gauge."""
    return f"{value}\n  {operator} on ({', '.join(QUEUE_LABELS)}) group_left ()\n{gauge(target)}"


def indent(expr: str, prefix: str = "  ") -> str:
    """Indent every line of a multi-line expression (for readable rule files)."""
    return "\n".join(prefix + line for line in expr.splitlines())
