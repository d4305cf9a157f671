"""The alert rules, defined once and rendered for Prometheus and for Grafana-managed alerting.

Prometheus rules (deploy/prometheus/rules/callpulse-alerts.yml, routed by
Alertmanager) are the paging path. The Grafana provisioning file is the
documented alternative; it is written to grafana/provisioning/alerting-disabled/
so Grafana does not load it and the same alert never pages twice (see
docs/operations.md, "Paging path").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from streams.metrics import catalogue
from streams.metrics.catalogue import QUEUE_LABELS
from streams.observability import names, thresholds
from streams.observability.promql import by, gauge, indent, join_target, rate, selector


class Severity(str, Enum):
    """critical pages someone now; warning goes to the team channel; info is for the Watchdog."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Links:
    """Bases of the runbook and dashboard links in the annotations."""

    grafana_url: str = names.DEFAULT_GRAFANA_URL
    runbook_url: str = names.DEFAULT_RUNBOOK_URL


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One alert. `description` is a Prometheus template; `$value` becomes `$values.A.Value` in Grafana."""

    name: str
    group: str
    expr: str
    for_: str
    keep_firing_for: str
    severity: Severity
    summary: str
    description: str
    dashboard_uid: str
    # Query string of the dashboard link, templated with the alert's labels.
    dashboard_vars: str = ""

    @property
    def runbook_anchor(self) -> str:
        """The anchor of the alert's heading in docs/operations.md (GitHub slug of the name)."""
        return self.name.lower()

    def runbook_url(self, links: Links) -> str:
        return f"{links.runbook_url}#{self.runbook_anchor}"

    def dashboard_url(self, links: Links) -> str:
        url = f"{links.grafana_url.rstrip('/')}/d/{self.dashboard_uid}"
        return f"{url}?{self.dashboard_vars}" if self.dashboard_vars else url

    def annotations(self, links: Links) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url(links),
            "dashboard_url": self.dashboard_url(links),
        }


QUEUE_GROUP = "callpulse-queues"
PIPELINE_GROUP = "callpulse-pipeline"

_QUEUE_VARS = "var-queue={{ $labels.queue }}&var-channel={{ $labels.channel }}"
_WHERE = "Queue {{ $labels.queue }} ({{ $labels.channel }})"
_W = thresholds.ALERT_WINDOW


def _window(metric: catalogue.MetricSpec) -> str:
    return gauge(metric, [f'window="{_W}"'])


def _enough_decided_contacts() -> str:
    decided = f"{_window(catalogue.WINDOW_ANSWERED)}\n+ {_window(catalogue.WINDOW_ABANDONED)}"
    return f"(\n{indent(decided)}\n  >= {thresholds.MIN_DECIDED_CONTACTS}\n)"


def _against_target(metric: catalogue.MetricSpec, target: thresholds.QueueTarget) -> str:
    compared = join_target(_window(metric), target.alert_operator, target.metric)
    return f"(\n{indent(compared)}\n)\nand on ({', '.join(QUEUE_LABELS)})\n{_enough_decided_contacts()}"


def hold_abandon_share(matchers: tuple[str, ...] = ()) -> str:
    """Hold abandons / holds in the hold-abandon window (the queue dashboard plots the same)."""
    window = (*matchers, f'window="{thresholds.HOLD_ABANDON_WINDOW}"')
    return f"{gauge(catalogue.WINDOW_HOLD_ABANDONS, window)}\n/ {gauge(catalogue.WINDOW_HOLDS, window)}"


def _hold_abandons_spike() -> str:
    window = f'window="{thresholds.HOLD_ABANDON_WINDOW}"'
    abandons = gauge(catalogue.WINDOW_HOLD_ABANDONS, [window])
    return (
        f"{abandons} >= {thresholds.HOLD_ABANDON_MIN_COUNT}\n"
        f"and on ({', '.join(QUEUE_LABELS)})\n"
        f"(\n{indent(hold_abandon_share())}\n) > {thresholds.HOLD_ABANDON_MAX_RATIO:g}"
    )


def _waiting_without_agents() -> str:
    available = by("sum", (), selector(catalogue.AGENTS, ['state="available"']))
    return f"{gauge(catalogue.QUEUE_WAITING)} > 0\nand on ()\n{available} < {thresholds.MIN_AVAILABLE_AGENTS}"


def _worker_down() -> str:
    up = f'up{{job="{names.SCRAPE_JOB}"}}'
    return f"{up} == 0\nor on ()\nabsent({up} == 1)"


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        name="ServiceLevelBelowTarget",
        group=QUEUE_GROUP,
        expr=_against_target(catalogue.WINDOW_SERVICE_LEVEL, thresholds.SERVICE_LEVEL),
        for_="5m",
        keep_firing_for="10m",
        severity=Severity.CRITICAL,
        summary="Service level below the queue's target",
        description=(
            f"{_WHERE} answered {{{{ $value | humanizePercentage }}}} of its contacts within the "
            f"service-level threshold over the last {_W}, below the queue's target."
        ),
        dashboard_uid=names.QUEUE_UID,
        dashboard_vars=_QUEUE_VARS,
    ),
    AlertRule(
        name="AbandonRateAboveTarget",
        group=QUEUE_GROUP,
        expr=_against_target(catalogue.WINDOW_ABANDON_RATIO, thresholds.ABANDON_RATIO),
        for_="5m",
        keep_firing_for="10m",
        severity=Severity.WARNING,
        summary="Abandon rate above the queue's target",
        description=(
            f"{_WHERE}: {{{{ $value | humanizePercentage }}}} of the contacts decided in the last "
            f"{_W} abandoned (short abandons excluded), above the queue's target."
        ),
        dashboard_uid=names.QUEUE_UID,
        dashboard_vars=_QUEUE_VARS,
    ),
    AlertRule(
        name="OldestWaitAboveMaximum",
        group=QUEUE_GROUP,
        expr=join_target(
            gauge(catalogue.QUEUE_OLDEST_WAIT), thresholds.MAX_WAIT.alert_operator, thresholds.MAX_WAIT.metric
        ),
        for_="1m",
        keep_firing_for="5m",
        severity=Severity.CRITICAL,
        summary="A contact has waited longer than the queue's maximum",
        description=(
            f"{_WHERE}: the longest-waiting contact has waited {{{{ $value | humanizeDuration }}}}, "
            "longer than the queue's maximum wait."
        ),
        dashboard_uid=names.QUEUE_UID,
        dashboard_vars=_QUEUE_VARS,
    ),
    AlertRule(
        name="ContactsWaitingNoAgentAvailable",
        group=QUEUE_GROUP,
        expr=_waiting_without_agents(),
        for_="2m",
        keep_firing_for="5m",
        severity=Severity.CRITICAL,
        summary="Contacts are waiting and no agent is available",
        description=(
            f"{_WHERE}: {{{{ $value | printf \"%.0f\" }}}} contacts are waiting and no agent is "
            "available in any queue."
        ),
        dashboard_uid=names.WALL_SCREEN_UID,
        dashboard_vars="var-queue={{ $labels.queue }}",
    ),
    AlertRule(
        name="HoldAbandonsSpike",
        group=QUEUE_GROUP,
        expr=_hold_abandons_spike(),
        for_="5m",
        keep_firing_for="15m",
        severity=Severity.WARNING,
        summary="Customers are hanging up while on hold",
        description=(
            f"{_WHERE}: {{{{ $value | printf \"%.0f\" }}}} customers hung up while on hold in the last "
            f"{thresholds.HOLD_ABANDON_WINDOW}, more than {thresholds.HOLD_ABANDON_MAX_RATIO:.0%} of the holds."
        ),
        dashboard_uid=names.QUEUE_UID,
        dashboard_vars=_QUEUE_VARS,
    ),
    AlertRule(
        name="PipelineStalled",
        group=PIPELINE_GROUP,
        expr=f"{gauge(catalogue.EVENT_TIME_LAG, labels=('instance',))} > {thresholds.MAX_EVENT_TIME_LAG_SECONDS:g}",
        for_="5m",
        keep_firing_for="5m",
        severity=Severity.CRITICAL,
        summary="A worker has stopped processing events",
        description=(
            "The newest event processed by worker {{ $labels.instance }} happened "
            "{{ $value | humanizeDuration }} ago: its partitions are not being processed, so the "
            "dashboards show stale values."
        ),
        dashboard_uid=names.PIPELINE_UID,
    ),
    AlertRule(
        name="InputRejected",
        group=PIPELINE_GROUP,
        expr=f"{rate(catalogue.EVENTS_REJECTED, thresholds.REJECTED_RATE_WINDOW, labels=('reason',))} > 0",
        for_="10m",
        keep_firing_for="15m",
        severity=Severity.WARNING,
        summary="Input events are being rejected to the dead-letter topic",
        description=(
            "Input messages are rejected with reason {{ $labels.reason }} at "
            "{{ $value | printf \"%.2f\" }} per second; they are in callpulse.dead-letter and "
            "missing from every metric."
        ),
        dashboard_uid=names.PIPELINE_UID,
    ),
    AlertRule(
        name="CallpulseWorkerDown",
        group=PIPELINE_GROUP,
        expr=_worker_down(),
        for_="2m",
        keep_firing_for="5m",
        severity=Severity.CRITICAL,
        summary="A callpulse worker cannot be scraped",
        description=(
            "{{ if $labels.instance }}Prometheus cannot scrape worker {{ $labels.instance }}: the "
            "queues it owns are missing from dashboards and alerts.{{ else }}Prometheus scrapes no "
            "healthy callpulse worker at all: no queue metrics reach dashboards or alerts.{{ end }}"
        ),
        dashboard_uid=names.PIPELINE_UID,
    ),
    AlertRule(
        name="Watchdog",
        group=PIPELINE_GROUP,
        expr="vector(1)",
        # Deliberately zero: the Watchdog must start and stop with the alerting pipeline itself.
        for_="0s",
        keep_firing_for="0s",
        severity=Severity.INFO,
        summary="Alerting pipeline heartbeat",
        description=(
            "Always firing. If this notification stops arriving, Prometheus, its rule evaluation "
            "or Alertmanager is down and no other alert can reach anyone."
        ),
        dashboard_uid=names.PIPELINE_UID,
    ),
)

BY_NAME: dict[str, AlertRule] = {rule.name: rule for rule in RULES}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(rule.group for rule in RULES))


def prometheus_rules(links: Links = Links()) -> dict:
    """The Prometheus rule file (`promtool check rules` format)."""
    return {
        "groups": [
            {
                "name": group,
                "rules": [
                    {
                        "alert": rule.name,
                        "expr": rule.expr,
                        "for": rule.for_,
                        "keep_firing_for": rule.keep_firing_for,
                        "labels": {"severity": rule.severity.value},
                        "annotations": rule.annotations(links),
                    }
                    for rule in RULES
                    if rule.group == group
                ],
            }
            for group in GROUPS
        ]
    }


# Grafana's expression fires for every series query A returns, whatever its value:
# the PromQL already filters, so presence is the condition (as in Prometheus).
GRAFANA_CONDITION = "is_number($A) || is_nan($A) || is_inf($A)"
GRAFANA_EVALUATION_INTERVAL = "1m"
_VALUE = re.compile(r"\$value\b")


def grafana_uid(rule: AlertRule) -> str:
    """A stable rule uid within Grafana's 40-character limit."""
    return "cp-" + re.sub(r"(?<!^)(?=[A-Z])", "-", rule.name).lower()


def _grafana_template(text: str) -> str:
    """Grafana exposes the value of query A as `$values.A.Value`, not `$value`."""
    return _VALUE.sub("$values.A.Value", text)


def _grafana_rule(rule: AlertRule, links: Links) -> dict:
    return {
        "uid": grafana_uid(rule),
        "title": rule.name,
        "condition": "B",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 900, "to": 0},
                "datasourceUid": names.DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "datasource": {"type": "prometheus", "uid": names.DATASOURCE_UID},
                    "expr": rule.expr,
                    "instant": True,
                    "range": False,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                    "type": "math",
                    "expression": GRAFANA_CONDITION,
                },
            },
        ],
        # No series means nothing breaches (the PromQL filters), not missing data.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": rule.for_,
        "keepFiringFor": rule.keep_firing_for,
        "labels": {"severity": rule.severity.value},
        "annotations": {key: _grafana_template(value) for key, value in rule.annotations(links).items()},
        "isPaused": False,
    }


def grafana_provisioning(links: Links = Links()) -> dict:
    """The same rules as a Grafana alerting provisioning file (apiVersion 1)."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": group,
                "folder": names.GRAFANA_FOLDER,
                "interval": GRAFANA_EVALUATION_INTERVAL,
                "rules": [_grafana_rule(rule, links) for rule in RULES if rule.group == group],
            }
            for group in GROUPS
        ],
    }
