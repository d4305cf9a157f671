"""Static checks on the PromQL the dashboards and alert rules run, against the metric catalogue.

A small reader, not a PromQL parser: it knows the shapes this package generates
(selectors, ranges, `agg by (...) (...)`, binary operators) and finds every
metric a query touches, the call that encloses it and the labels it matches.
The rules are the project's conventions (docs/operations.md, "Query conventions").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.metrics import catalogue
from streams.metrics.catalogue import QUEUE_LABELS, Kind, MetricSpec
from streams.observability.promql import RATE_INTERVAL

# Series Prometheus itself creates; queries may use them besides the catalogue.
PROMETHEUS_SERIES = {"up": ("job", "instance"), "ALERTS": ("alertname", "alertstate", "severity")}
# Labels the scrape adds to every series.
TARGET_LABELS = ("job", "instance")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
RANGE_FUNCTIONS = {"rate", "irate", "increase"}
# Each worker exports the agents it owns (partitioned by agent id): the total is a sum.
SUMMED_GAUGES = {catalogue.AGENTS.name}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_RANGE_CALL = re.compile(r"\b(rate|irate|increase)\(\s*[^\[\(]*\[([^\]]+)\]")


@dataclass(frozen=True, slots=True)
class Reference:
    """One metric a query reads: the series name, where it stands and the labels it matches."""

    series: str
    position: int
    matchers: dict[str, str]

    @property
    def spec(self) -> MetricSpec | None:
        return catalogue.BY_NAME.get(self.series) or catalogue.BY_NAME.get(_histogram_base(self.series))

    @property
    def suffix(self) -> str:
        """`_bucket`/`_sum`/`_count` when the series is part of a histogram, else ''."""
        spec = self.spec
        if spec is None or spec.name == self.series:
            return ""
        return self.series.removeprefix(spec.name)


@dataclass(frozen=True, slots=True)
class Call:
    """The function or aggregation directly around a metric, with its `by (...)` labels."""

    name: str
    grouping: tuple[str, ...] = ()


def _histogram_base(series: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix):
            base = series.removesuffix(suffix)
            spec = catalogue.BY_NAME.get(base)
            if spec is not None and spec.kind is Kind.HISTOGRAM:
                return base
    return series


def _blank(text: str, pattern: re.Pattern, group: int = 0) -> str:
    """Overwrite matches (or one group of them) with spaces, keeping every position."""

    def spaces(match: re.Match) -> str:
        start, end = match.span(group)
        whole_start = match.start()
        inner = match.group(0)
        return inner[: start - whole_start] + " " * (end - start) + inner[end - whole_start :]

    return pattern.sub(spaces, text)


def references(expr: str) -> list[Reference]:
    """Every metric name the expression reads, with its label matchers."""
    blanked = _blank(expr, _STRING)
    braces = {match.start(): expr[match.start() : match.end()] for match in _BRACES.finditer(blanked)}
    blanked = _blank(blanked, _BRACES)
    blanked = _blank(blanked, _BRACKETS)
    blanked = _blank(blanked, _GROUPING, 2)
    found = []
    for match in _IDENTIFIER.finditer(blanked):
        name = match.group(0)
        rest = blanked[match.end() :].lstrip()
        if name in _KEYWORDS or rest.startswith("(") or re.match(r"(by|without)\b", rest):
            continue
        selector = braces.get(match.end(), "")
        matchers = {label: value for label, _, value in _MATCHER.findall(selector)}
        found.append(Reference(name, match.start(), matchers))
    return found


def enclosing_call(expr: str, position: int) -> Call | None:
    """The innermost call whose parentheses contain `position`; None at top level."""
    blanked = _blank(_blank(_blank(expr, _STRING), _BRACES), _BRACKETS)
    depth = 0
    for index in range(position - 1, -1, -1):
        char = blanked[index]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth:
                depth -= 1
                continue
            return _call_before(blanked, index)
    return None


def _call_before(text: str, paren: int) -> Call:
    head = text[:paren].rstrip()
    grouping: tuple[str, ...] = ()
    if head.endswith(")"):
        opening = head.rfind("(")
        grouping = tuple(label.strip() for label in head[opening + 1 : -1].split(",") if label.strip())
        head = head[:opening].rstrip()
        head = re.sub(r"\b(by|without)$", "", head).rstrip()
    name = re.search(r"[a-zA-Z_:][a-zA-Z0-9_:]*$", head)
    return Call(name.group(0) if name else "", grouping)


def problems(expr: str, *, dashboard: bool, selector: bool = False) -> list[str]:
    """Everything in `expr` that breaks the conventions; empty when it is fine.

    `dashboard` demands `$__rate_interval` in every range; `selector` marks a bare
    series selector (a variable's label_values), checked for names and labels only.
    """
    found = []
    if dashboard:
        for function, window in _RANGE_CALL.findall(expr):
            if window != RATE_INTERVAL:
                found.append(f"{function}() over [{window}] instead of [{RATE_INTERVAL}]")
    for reference in references(expr):
        found += _reference_problems(expr, reference, selector)
    return found


def _reference_problems(expr: str, reference: Reference, selector: bool) -> list[str]:
    name = reference.series
    if name in PROMETHEUS_SERIES:
        allowed = set(PROMETHEUS_SERIES[name])
        unknown = set(reference.matchers) - allowed
        return [f"{name}: no label {sorted(unknown)}"] if unknown else []
    spec = reference.spec
    if spec is None:
        return [f"{name}: not in streams.metrics.catalogue"]
    found = []
    allowed = set(spec.labels) | set(TARGET_LABELS) | ({"le"} if reference.suffix == "_bucket" else set())
    unknown = set(reference.matchers) - allowed
    if unknown:
        found.append(f"{name}: matches labels {sorted(unknown)} it does not have")
    if selector:
        return found
    call = enclosing_call(expr, reference.position)
    call_name = call.name if call else ""
    if name.endswith("_total") or spec.kind is Kind.HISTOGRAM:
        if call_name not in RANGE_FUNCTIONS:
            found.append(f"{name}: a counter series outside rate()/increase() (in {call_name or 'top level'})")
        if spec.kind is Kind.HISTOGRAM and reference.suffix == "":
            found.append(f"{name}: a histogram read without _bucket/_sum/_count")
    elif spec.kind is Kind.GAUGE:
        found += _gauge_problems(spec, call)
    return found


def _gauge_problems(spec: MetricSpec, call: Call | None) -> list[str]:
    if call is not None and call.name in RANGE_FUNCTIONS:
        return [f"{spec.name}: a gauge inside {call.name}()"]
    if spec.name in SUMMED_GAUGES:
        expected = {"sum"}
    elif set(QUEUE_LABELS) <= set(spec.labels):
        if call is None or call.name != "max" or not set(QUEUE_LABELS) <= set(call.grouping):
            return [f"{spec.name}: a per-queue gauge not read with max by (queue, channel, ...)"]
        return []
    else:
        expected = {"max", "min"}
    if call is None or call.name not in expected:
        return [f"{spec.name}: a gauge not aggregated with {' or '.join(sorted(expected))} over workers"]
    return []
