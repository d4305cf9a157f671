"""The three Grafana dashboards as code: wall screen, queue drill-down and pipeline health.

Built with grafana-foundation-sdk (pinned 0.0.21) and committed as JSON under
grafana/dashboards/. Metric names come only from streams.metrics.catalogue and
colour thresholds only from streams.observability.thresholds, the same
definitions the alert rules use. Every panel queries through the `datasource`
variable and has an explicit id, refIds, unit, title and description.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import prometheus as prometheus_models
from grafana_foundation_sdk.models import units

from streams.metrics import catalogue
from streams.metrics.catalogue import QUEUE_LABELS, MetricSpec
from streams.observability import names, thresholds
from streams.observability.alerts import hold_abandon_share
from streams.observability.promql import QUEUE_FILTER, RATE_INTERVAL, by, gauge, quantile, rate, selector
from streams.observability.thresholds import Breach, QueueTarget

DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${%s}" % names.DATASOURCE_VARIABLE)
NO_DATA = "NO DATA"
TAGS = [names.GRAFANA_FOLDER]

RED, AMBER, GREEN, BLUE = "red", "orange", "green", "blue"
PERCENTILES = (0.5, 0.9, 0.99)
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_UP = f'up{{job="{names.SCRAPE_JOB}"}}'


@dataclass(frozen=True, slots=True)
class Query:
    """One panel target; `target_line` draws it as a dashed reference line (a target gauge)."""

    expr: str
    legend: str
    target_line: bool = False


@dataclass
class PanelIds:
    """Hands out explicit, stable panel ids in layout order."""

    last: int = 0

    def next(self) -> int:
        self.last += 1
        return self.last


@dataclass(frozen=True, slots=True)
class Steps:
    """Colour steps: a base colour and (value, colour) steps above it."""

    base: str
    above: tuple[tuple[float, str], ...] = field(default=())

    def build(self) -> builders.ThresholdsConfig:
        steps = [dashboard.Threshold(value=None, color=self.base)]
        steps += [dashboard.Threshold(value=value, color=colour) for value, colour in self.above]
        return builders.ThresholdsConfig().mode(dashboard.ThresholdsMode.ABSOLUTE).steps(steps)


def target_steps(target: QueueTarget) -> Steps:
    """Red on the side of the target the alert fires on, green on the other (defaults, see thresholds)."""
    if target.breach is Breach.BELOW:
        return Steps(RED, ((target.default, GREEN),))
    return Steps(GREEN, ((target.default, RED),))


def _targets(queries: Sequence[Query], instant: bool = False, table_format: bool = False) -> list:
    built = []
    for ref_id, query in zip(REF_IDS, queries, strict=False):
        target = (
            prometheus.Dataquery()
            .ref_id(ref_id)
            .datasource(DATASOURCE)
            .expr(query.expr)
            .legend_format(query.legend)
        )
        target = target.instant() if instant else target.range()
        if table_format:
            target = target.format(prometheus_models.PromQueryFormat.TABLE)
        built.append(target)
    return built


def _stat(
    ids: PanelIds,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    steps: Steps,
    width: int,
    height: int,
) -> stat.Panel:
    """A wall-screen tile: instant query, last non-null value, background colour, NO DATA when absent."""
    return (
        stat.Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .no_value(NO_DATA)
        .thresholds(steps.build())
        .color_scheme(builders.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .targets(_targets(queries, instant=True))
    )


def _timeseries(
    ids: PanelIds,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    width: int = 12,
    height: int = 8,
    threshold: tuple[float, str] | None = None,
) -> timeseries.Panel:
    """A trend panel; target gauges become dashed lines, a fixed threshold a dashed red line."""
    panel = (
        timeseries.Panel()
        .id(ids.next())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .no_value(NO_DATA)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .targets(_targets(queries))
    )
    if threshold is not None:
        value, colour = threshold
        panel = panel.thresholds(Steps(GREEN, ((value, colour),)).build()).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    for ref_id, query in zip(REF_IDS, queries, strict=False):
        if query.target_line:
            panel = panel.override_by_query(
                ref_id,
                [
                    dashboard.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
                    dashboard.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                    dashboard.DynamicConfigValue(id_val="custom.lineWidth", value=2),
                ],
            )
    return panel


def _row(ids: PanelIds, title: str, repeat: str | None = None) -> builders.Row:
    row = builders.Row(title).id(ids.next()).collapsed(False)
    return row.repeat(repeat) if repeat else row


def _datasource_variable() -> builders.DatasourceVariable:
    return (
        builders.DatasourceVariable(names.DATASOURCE_VARIABLE)
        .label("Data source")
        .type("prometheus")
        .current(dashboard.VariableOption(selected=True, text="Prometheus", value=names.DATASOURCE_UID))
    )


def _label_variable(name: str, label: str, metric: MetricSpec, matchers: Sequence[str] = ()) -> builders.QueryVariable:
    """A multi-select variable listing a label's values seen in the dashboard's time range."""
    query = f"label_values({selector(metric, matchers)}, {name})"
    return (
        builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .definition(query)
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .current(dashboard.VariableOption(selected=True, text="All", value="$__all"))
    )


def _links() -> list[builders.DashboardLink]:
    return [
        builders.DashboardLink("callpulse dashboards")
        .type(dashboard.DashboardLinkType.DASHBOARDS)
        .tags(TAGS)
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]


def _dashboard(uid: str, title: str, description: str, refresh: str, time_from: str) -> builders.Dashboard:
    return (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh(refresh)
        .time(time_from, "now")
        .timezone("browser")
        .readonly()
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .links(_links())
        .with_variable(_datasource_variable())
    )


def _agents(state: str) -> str:
    """Agents are partitioned by agent id: each worker exports its own, so they are summed."""
    return by("sum", (), selector(catalogue.AGENTS, [f'state="{state}"']))


def _workers_up(ids: PanelIds, width: int, height: int) -> stat.Panel:
    return _stat(
        ids,
        "Workers up",
        "callpulse workers Prometheus scraped successfully (scrape job "
        f"'{names.SCRAPE_JOB}'). Red at zero: every figure on this screen is then stale or missing.",
        units.Short,
        [Query(by("sum", (), _UP), "workers")],
        Steps(RED, ((thresholds.MIN_WORKERS_UP, GREEN),)),
        width,
        height,
    )


def wall_screen() -> builders.Dashboard:
    """Kiosk-ready: one row of tall tiles per queue, coloured by the alert thresholds."""
    ids = PanelIds()
    window = f'window="{thresholds.ALERT_WINDOW}"'
    in_queue = ('queue=~"$queue"',)
    board = (
        _dashboard(
            names.WALL_SCREEN_UID,
            "callpulse wall screen",
            "Live queue status for a wall display. Open with ?kiosk&_dash.hideTimePicker&_dash.hideVariables. "
            "Colours use the alert thresholds with the built-in default targets (service level "
            f"{thresholds.SERVICE_LEVEL.default:.0%}, abandon rate {thresholds.ABANDON_RATIO.default:.0%}, maximum wait "
            f"{thresholds.MAX_WAIT.default:g} s); queues with their own targets are alerted on those. "
            "NO DATA means the exporter is not reporting, never zero.",
            "30s",
            "now-1h",
        )
        .timepicker(builders.TimePicker().hidden(True).refresh_intervals(["30s", "1m", "5m"]))
        .with_variable(_label_variable("queue", "Queues", catalogue.QUEUE_WAITING))
    )
    board = (
        board.with_panel(
            _stat(
                ids,
                "Agents available",
                "Agents in state 'available' over all workers. Red when none is available "
                "(the ContactsWaitingNoAgentAvailable alert fires if contacts wait meanwhile).",
                units.Short,
                [Query(_agents("available"), "available")],
                Steps(RED, ((thresholds.MIN_AVAILABLE_AGENTS, GREEN),)),
                8,
                5,
            )
        )
        .with_panel(
            _stat(
                ids,
                "Agents on a contact",
                "Agents in state 'on_contact' over all workers.",
                units.Short,
                [Query(_agents("on_contact"), "on a contact")],
                Steps(BLUE),
                8,
                5,
            )
        )
        .with_panel(_workers_up(ids, 8, 5))
        .with_row(_row(ids, "$queue", repeat="queue"))
        .with_panel(
            _stat(
                ids,
                "Waiting now",
                "Contacts waiting in the queue now, per channel.",
                units.Short,
                [Query(gauge(catalogue.QUEUE_WAITING, in_queue), "{{channel}}")],
                Steps(BLUE),
                6,
                7,
            )
        )
        .with_panel(
            _stat(
                ids,
                "Oldest wait",
                "How long the longest-waiting contact has waited. Amber past the service-level threshold "
                f"({thresholds.SERVICE_LEVEL_THRESHOLD.default:g} s), red past the maximum wait "
                f"({thresholds.MAX_WAIT.default:g} s, the OldestWaitAboveMaximum alert).",
                units.Seconds,
                [Query(gauge(catalogue.QUEUE_OLDEST_WAIT, in_queue), "{{channel}}")],
                Steps(
                    GREEN,
                    ((thresholds.SERVICE_LEVEL_THRESHOLD.default, AMBER), (thresholds.MAX_WAIT.default, RED)),
                ),
                6,
                7,
            )
        )
        .with_panel(
            _stat(
                ids,
                f"Service level {thresholds.ALERT_WINDOW}",
                f"Share of contacts decided in the last {thresholds.ALERT_WINDOW} that were answered within the "
                "service-level threshold (short abandons excluded). Red below the default target "
                f"({thresholds.SERVICE_LEVEL.default:.0%}, the ServiceLevelBelowTarget alert). "
                "NO DATA also when no contact was decided in the window.",
                units.PercentUnit,
                [Query(gauge(catalogue.WINDOW_SERVICE_LEVEL, (*in_queue, window)), "{{channel}}")],
                target_steps(thresholds.SERVICE_LEVEL),
                6,
                7,
            )
        )
        .with_panel(
            _stat(
                ids,
                f"Abandon rate {thresholds.ALERT_WINDOW}",
                f"Share of contacts decided in the last {thresholds.ALERT_WINDOW} that abandoned (short abandons "
                f"excluded). Red above the default target ({thresholds.ABANDON_RATIO.default:.0%}, the "
                "AbandonRateAboveTarget alert). NO DATA also when no contact was decided in the window.",
                units.PercentUnit,
                [Query(gauge(catalogue.WINDOW_ABANDON_RATIO, (*in_queue, window)), "{{channel}}")],
                target_steps(thresholds.ABANDON_RATIO),
                6,
                7,
            )
        )
    )
    return board


def _target(metric: QueueTarget) -> Query:
    return Query(gauge(metric.metric, QUEUE_FILTER), "target {{queue}} {{channel}}", target_line=True)


def _windowed(metric: MetricSpec) -> str:
    return gauge(metric, QUEUE_FILTER, (*QUEUE_LABELS, "window"))


def _percentiles(metric: MetricSpec, matchers: Sequence[str] = QUEUE_FILTER) -> list[Query]:
    return [
        Query(quantile(q, metric, RATE_INTERVAL, matchers), f"p{q * 100:g} {{{{queue}}}} {{{{channel}}}}")
        for q in PERCENTILES
    ]


_PER_QUEUE = "{{queue}} {{channel}}"
_PER_WINDOW = "{{queue}} {{channel}} {{window}}"


def _window_table(ids: PanelIds) -> table.Panel:
    """Every window's counts side by side: one instant query per gauge, merged on the labels."""
    columns = [
        ("Queued", catalogue.WINDOW_QUEUED),
        ("Answered", catalogue.WINDOW_ANSWERED),
        ("Abandoned", catalogue.WINDOW_ABANDONED),
        ("Short abandoned", catalogue.WINDOW_SHORT_ABANDONED),
        ("Holds", catalogue.WINDOW_HOLDS),
        ("Hold abandons", catalogue.WINDOW_HOLD_ABANDONS),
        ("Transfers", catalogue.WINDOW_TRANSFERS),
    ]
    queries = [Query(_windowed(metric), title) for title, metric in columns]
    rename = {f"Value #{ref_id}": title for ref_id, (title, _) in zip(REF_IDS, columns, strict=False)}
    return (
        table.Panel()
        .id(ids.next())
        .title("Window counts")
        .description(
            "Contacts per event-time window (5m, 15m, 1h, today): a contact counts in a window by the time "
            "of the event that decided its outcome. Short abandons are excluded from Abandoned."
        )
        .datasource(DATASOURCE)
        .unit(units.Short)
        .no_value(NO_DATA)
        .span(24)
        .height(9)
        .targets(_targets(queries, instant=True, table_format=True))
        .with_transformation(dashboard.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dashboard.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": rename, "indexByName": {}},
            )
        )
    )


def queue() -> builders.Dashboard:
    """Drill-down for one or more queues and channels: now, windows, distributions and flow."""
    ids = PanelIds()
    board = (
        _dashboard(
            names.QUEUE_UID,
            "callpulse queue",
            "One queue in depth: current state, every event-time window, wait/hold/handle distributions "
            "and contact flow. Dashed lines are the queue's configured targets.",
            "1m",
            "now-6h",
        )
        .with_variable(_label_variable("queue", "Queue", catalogue.QUEUE_WAITING))
        .with_variable(_label_variable("channel", "Channel", catalogue.QUEUE_WAITING, ('queue=~"$queue"',)))
    )

    board = (
        board.with_row(_row(ids, "Now"))
        .with_panel(
            _timeseries(
                ids,
                "Contacts waiting, on hold and connected",
                "Current state per queue and channel: waiting in the queue, on hold, and connected to an agent.",
                units.Short,
                [
                    Query(gauge(catalogue.QUEUE_WAITING, QUEUE_FILTER), "waiting " + _PER_QUEUE),
                    Query(gauge(catalogue.QUEUE_ON_HOLD, QUEUE_FILTER), "on hold " + _PER_QUEUE),
                    Query(gauge(catalogue.QUEUE_ACTIVE, QUEUE_FILTER), "connected " + _PER_QUEUE),
                ],
                width=8,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Oldest wait vs maximum",
                "Age of the longest-waiting contact; the dashed line is the queue's maximum wait "
                "(OldestWaitAboveMaximum fires above it).",
                units.Seconds,
                [Query(gauge(catalogue.QUEUE_OLDEST_WAIT, QUEUE_FILTER), _PER_QUEUE), _target(thresholds.MAX_WAIT)],
                width=8,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Estimated wait vs service-level threshold",
                "Expected wait of a contact queued now; the dashed line is the queue's service-level answer threshold.",
                units.Seconds,
                [
                    Query(gauge(catalogue.QUEUE_ESTIMATED_WAIT, QUEUE_FILTER), _PER_QUEUE),
                    _target(thresholds.SERVICE_LEVEL_THRESHOLD),
                ],
                width=8,
            )
        )
        .with_row(_row(ids, "Event-time windows"))
        .with_panel(
            _timeseries(
                ids,
                "Service level by window",
                "Answered within the threshold / (answered + abandoned), short abandons excluded, per window; "
                "dashed: the queue's target (ServiceLevelBelowTarget judges the 5m window).",
                units.PercentUnit,
                [Query(_windowed(catalogue.WINDOW_SERVICE_LEVEL), _PER_WINDOW), _target(thresholds.SERVICE_LEVEL)],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Abandon rate by window",
                "Abandoned / (answered + abandoned), short abandons excluded, per window; dashed: the queue's "
                "target (AbandonRateAboveTarget judges the 5m window).",
                units.PercentUnit,
                [Query(_windowed(catalogue.WINDOW_ABANDON_RATIO), _PER_WINDOW), _target(thresholds.ABANDON_RATIO)],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Average speed of answer by window",
                "Mean wait of answered contacts (ASA) per window; dashed: the service-level threshold.",
                units.Seconds,
                [
                    Query(_windowed(catalogue.WINDOW_ANSWER_WAIT), _PER_WINDOW),
                    _target(thresholds.SERVICE_LEVEL_THRESHOLD),
                ],
                width=8,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Average hold and handle time by window",
                "Mean duration of holds that ended in the window, and mean handle time (answer to end of "
                "after-contact work) of contacts whose wrap-up ended in it.",
                units.Seconds,
                [
                    Query(_windowed(catalogue.WINDOW_AVERAGE_HOLD), "hold " + _PER_WINDOW),
                    Query(_windowed(catalogue.WINDOW_AVERAGE_HANDLE), "handle " + _PER_WINDOW),
                ],
                width=8,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Transfer rate by window",
                "Transfers / answered contacts per window.",
                units.PercentUnit,
                [Query(_windowed(catalogue.WINDOW_TRANSFER_RATIO), _PER_WINDOW)],
                width=8,
            )
        )
        .with_panel(_window_table(ids))
        .with_panel(
            _timeseries(
                ids,
                f"Hold abandon share ({thresholds.HOLD_ABANDON_WINDOW})",
                f"Hold abandons / holds in the last {thresholds.HOLD_ABANDON_WINDOW}. HoldAbandonsSpike fires above "
                f"the dashed line ({thresholds.HOLD_ABANDON_MAX_RATIO:.0%}) once at least "
                f"{thresholds.HOLD_ABANDON_MIN_COUNT} customers hung up on hold in the window.",
                units.PercentUnit,
                [Query(hold_abandon_share(QUEUE_FILTER), _PER_QUEUE)],
                width=24,
                threshold=(thresholds.HOLD_ABANDON_MAX_RATIO, RED),
            )
        )
        .with_row(_row(ids, "Distributions"))
        .with_panel(
            _timeseries(
                ids,
                "Wait of answered contacts (percentiles)",
                "Percentiles of the queue wait of answered contacts, from the wait histogram; dashed: the "
                "service-level threshold (a bucket edge, so the share below it is exact).",
                units.Seconds,
                [
                    *_percentiles(catalogue.QUEUE_WAIT, (*QUEUE_FILTER, 'outcome="answered"')),
                    _target(thresholds.SERVICE_LEVEL_THRESHOLD),
                ],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Wait of abandoned contacts (percentiles)",
                "Percentiles of how long customers waited before abandoning (short abandons included in the histogram).",
                units.Seconds,
                _percentiles(catalogue.QUEUE_WAIT, (*QUEUE_FILTER, 'outcome="abandoned"')),
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Hold duration (percentiles)",
                "Percentiles of the duration of each hold.",
                units.Seconds,
                _percentiles(catalogue.HOLD_DURATION),
                width=8,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Handle time (percentiles)",
                "Percentiles of handle time: answer to the end of after-contact work.",
                units.Seconds,
                _percentiles(catalogue.HANDLE_DURATION),
                width=8,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Chat first response (percentiles)",
                "Chat only: percentiles of the time from answer to the agent's first message.",
                units.Seconds,
                _percentiles(catalogue.CHAT_FIRST_RESPONSE),
                width=8,
            )
        )
        .with_row(_row(ids, "Flow"))
        .with_panel(
            _timeseries(
                ids,
                "Contacts per second by outcome",
                "Contacts entering the queue and leaving it by outcome, per second (lifetime counters, summed over workers).",
                units.CountsPerSecond,
                [
                    Query(rate(catalogue.CONTACTS_QUEUED, RATE_INTERVAL, QUEUE_FILTER), "queued " + _PER_QUEUE),
                    Query(rate(catalogue.CONTACTS_ANSWERED, RATE_INTERVAL, QUEUE_FILTER), "answered " + _PER_QUEUE),
                    Query(rate(catalogue.CONTACTS_ABANDONED, RATE_INTERVAL, QUEUE_FILTER), "abandoned " + _PER_QUEUE),
                    Query(
                        rate(catalogue.CONTACTS_SHORT_ABANDONED, RATE_INTERVAL, QUEUE_FILTER),
                        "short abandoned " + _PER_QUEUE,
                    ),
                    Query(rate(catalogue.CONTACTS_CALLBACK, RATE_INTERVAL, QUEUE_FILTER), "callback " + _PER_QUEUE),
                ],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Holds and hold abandons per second",
                "Holds started and contacts that ended while on hold, per second.",
                units.CountsPerSecond,
                [
                    Query(rate(catalogue.HOLDS, RATE_INTERVAL, QUEUE_FILTER), "holds " + _PER_QUEUE),
                    Query(rate(catalogue.HOLD_ABANDONS, RATE_INTERVAL, QUEUE_FILTER), "hold abandons " + _PER_QUEUE),
                ],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Transfers per second by type",
                "Transfers (blind, warm, external) counted on the queue the contact was answered from.",
                units.CountsPerSecond,
                [
                    Query(
                        rate(
                            catalogue.CONTACTS_TRANSFERRED,
                            RATE_INTERVAL,
                            QUEUE_FILTER,
                            (*QUEUE_LABELS, "transfer_type"),
                        ),
                        "{{transfer_type}} " + _PER_QUEUE,
                    )
                ],
                width=24,
            )
        )
    )
    return board


CONSUMER_LAG_METRIC = "callpulse_consumer_lag_messages"


def pipeline() -> builders.Dashboard:
    """Is the stream healthy: input, rejections, lag, latency, state size and scrape status."""
    ids = PanelIds()
    consumer_lag = catalogue.BY_NAME.get(CONSUMER_LAG_METRIC)
    lag_note = "" if consumer_lag else f" Kafka consumer lag is not shown: the catalogue has no {CONSUMER_LAG_METRIC}."
    board = _dashboard(
        names.PIPELINE_UID,
        "callpulse pipeline",
        "Health of the stream processor: input rates, rejected/duplicate/late events, event-time lag, "
        "processing latency, state size and scrape status per worker." + lag_note,
        "30s",
        "now-3h",
    )
    board = (
        board.with_row(_row(ids, "Input"))
        .with_panel(
            _timeseries(
                ids,
                "Events per second by type",
                "Valid input events processed per second, duplicates excluded.",
                units.CountsPerSecond,
                [Query(rate(catalogue.EVENTS, RATE_INTERVAL, labels=("type",)), "{{type}}")],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Rejected events per second by reason",
                "Input messages sent to callpulse.dead-letter per second; InputRejected fires while this stays above zero.",
                units.CountsPerSecond,
                [Query(rate(catalogue.EVENTS_REJECTED, RATE_INTERVAL, labels=("reason",)), "{{reason}}")],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Duplicate and late events per second",
                "Duplicates (event_id already processed, ignored) and late events (older than the 1h window at "
                "arrival: lifetime counters only).",
                units.CountsPerSecond,
                [
                    Query(rate(catalogue.EVENTS_DUPLICATE, RATE_INTERVAL, labels=()), "duplicate"),
                    Query(rate(catalogue.EVENTS_LATE, RATE_INTERVAL, labels=()), "late"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Expired contacts per second",
                "Contacts removed from the current-state gauges after no event for contact_expiry_seconds: "
                "a producer is losing end events.",
                units.CountsPerSecond,
                [Query(rate(catalogue.CONTACTS_EXPIRED, RATE_INTERVAL), _PER_QUEUE)],
            )
        )
        .with_row(_row(ids, "Lag and latency"))
        .with_panel(
            _timeseries(
                ids,
                "Event-time lag per worker",
                "Wall clock minus the newest processed event time. PipelineStalled fires above the dashed line "
                f"({thresholds.MAX_EVENT_TIME_LAG_SECONDS:g} s); it also grows when no events arrive at all.",
                units.Seconds,
                [Query(gauge(catalogue.EVENT_TIME_LAG, labels=("instance",)), "{{instance}}")],
                threshold=(thresholds.MAX_EVENT_TIME_LAG_SECONDS, RED),
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Processing latency (percentiles)",
                "Time from receiving a message to its state being updated, over all workers.",
                units.Seconds,
                [
                    Query(quantile(q, catalogue.PROCESSING_LATENCY, RATE_INTERVAL, labels=()), f"p{q * 100:g}")
                    for q in PERCENTILES
                ],
            )
        )
    )
    if consumer_lag is not None:
        board = board.with_panel(
            _timeseries(
                ids,
                "Consumer lag",
                "Messages in the input topic not yet processed, per worker.",
                units.Short,
                [Query(gauge(consumer_lag, labels=("instance",)), "{{instance}}")],
                width=24,
            )
        )
    board = (
        board.with_row(_row(ids, "Workers"))
        .with_panel(_workers_up(ids, 6, 8))
        .with_panel(
            _timeseries(
                ids,
                "Scrape status per worker",
                f"1 when Prometheus scraped the worker (job '{names.SCRAPE_JOB}'), 0 when the scrape failed; "
                "CallpulseWorkerDown fires on 0 or when no worker is scraped at all.",
                units.Short,
                [Query(by("max", ("instance",), _UP), "{{instance}}")],
                width=9,
            )
        )
        .with_panel(
            _timeseries(
                ids,
                "Tracked contacts per worker",
                "Contacts held in state by each worker (in flight or kept for deduplication): the state size.",
                units.Short,
                [Query(gauge(catalogue.TRACKED_CONTACTS, labels=("instance",)), "{{instance}}")],
                width=9,
            )
        )
    )
    return board


DASHBOARDS = {
    "wall-screen.json": wall_screen,
    "queue.json": queue,
    "pipeline.json": pipeline,
}


def render(builder: builders.Dashboard) -> str:
    """Stable JSON text (sorted keys, trailing newline) so regeneration gives identical files."""
    return json.dumps(builder.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def build_all() -> dict[str, dict]:
    """Every dashboard as plain JSON data, keyed by file name."""
    return {file_name: json.loads(render(factory())) for file_name, factory in DASHBOARDS.items()}
