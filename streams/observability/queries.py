"""Every PromQL expression the dashboards and alert rules run, as (source, expr) data.

An end-to-end test evaluates them all against a Prometheus that scraped a real
worker; `evaluable()` substitutes Grafana's variables first so each one is
plain PromQL. Sources name where a query lives, so a failure points at a panel
or a rule.

    >>> for source, expr in evaluable({"queue": "support"}):
    ...     prometheus.query(expr)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from streams.observability import alerts, dashboards

# Values for Grafana's variables when a query runs outside Grafana. Regex
# matchers (`=~"$queue"`) accept ".*"; rate windows get a fixed 1m (4 scrapes
# at the 15 s interval the deployment uses).
DEFAULT_VARIABLES: Mapping[str, str] = {
    "queue": ".*",
    "channel": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "datasource": "callpulse-prometheus",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$", re.DOTALL)


class SourcedQuery(NamedTuple):
    """Where a query comes from (`dashboard <uid> panel <id> "<title>" <refId>`, ...) and its PromQL."""

    source: str
    expr: str


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_queries(built: Mapping[str, dict] | None = None) -> list[SourcedQuery]:
    """Every panel target of every dashboard, in panel order."""
    built = dashboards.build_all() if built is None else built
    found = []
    for board in built.values():
        for panel in _panels(board.get("panels") or []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    source = f'dashboard {board["uid"]} panel {panel["id"]} "{panel["title"]}" {target["refId"]}'
                    found.append(SourcedQuery(source, target["expr"]))
    return found


def variable_queries(built: Mapping[str, dict] | None = None) -> list[SourcedQuery]:
    """The series selector behind each `label_values(selector, label)` variable."""
    built = dashboards.build_all() if built is None else built
    found = []
    for board in built.values():
        for variable in board["templating"]["list"]:
            if variable.get("type") != "query":
                continue
            match = _LABEL_VALUES.match(variable["query"])
            if match is None:
                raise ValueError(f"{board['uid']} ${variable['name']}: not label_values(selector, label)")
            found.append(SourcedQuery(f"dashboard {board['uid']} variable ${variable['name']}", match["selector"]))
    return found


def alert_queries() -> list[SourcedQuery]:
    """Every alert rule's expression (the same text in the Prometheus and Grafana files)."""
    return [SourcedQuery(f"alert {rule.name}", rule.expr) for rule in alerts.RULES]


def all_queries() -> list[SourcedQuery]:
    """Dashboard panels, dashboard variables and alert rules, with Grafana variables left in."""
    built = dashboards.build_all()
    return dashboard_queries(built) + variable_queries(built) + alert_queries()


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace `$name`, `${name}` and `[[name]]`; an unknown variable raises KeyError."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def value(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        return values[name]

    return _VARIABLE.sub(value, expr)


def evaluable(variables: Mapping[str, str] | None = None) -> list[SourcedQuery]:
    """`all_queries()` with variables substituted: ready for Prometheus' /api/v1/query."""
    return [SourcedQuery(source, substitute(expr, variables)) for source, expr in all_queries()]
