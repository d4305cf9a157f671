"""Dashboards: committed JSON is current, valid for the SDK's models, and follows the lint rules.

grafana-foundation-sdk 0.0.21 ships no JSON Schema files in its wheel (the
repository's jsonschema/ directory is not packaged), so validity is checked by
round-tripping every dashboard through the SDK's generated models (with the
panel and query plugins registered, an unknown key anywhere is lost and the
round trip differs) plus a structural JSON Schema of what Grafana needs here.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from streams.config import QueueTargets
from streams.metrics import catalogue
from streams.observability import alerts, dashboards, generate, lint, names, queries, thresholds

DASHBOARD_DIR = generate.REPO_ROOT / generate.DASHBOARD_DIR
BUILT = dashboards.build_all()
FILES = sorted(dashboards.DASHBOARDS)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _committed(file_name: str) -> dict:
    return json.loads((DASHBOARD_DIR / file_name).read_text(encoding="utf-8"))


def _panels(board: dict) -> list[dict]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels") or [])
    return found


def _visual_panels(board: dict) -> list[dict]:
    return [panel for panel in _panels(board) if panel["type"] != "row"]


PANELS = [(name, panel) for name in FILES for panel in _visual_panels(BUILT[name])]
PANEL_IDS = [f"{name}:{panel['id']}" for name, panel in PANELS]


# --- drift and validity ----------------------------------------------------------


@pytest.mark.parametrize("file_name", FILES)
def test_committed_dashboard_equals_a_fresh_generation(file_name):
    committed = (DASHBOARD_DIR / file_name).read_text(encoding="utf-8")
    assert committed == dashboards.render(dashboards.DASHBOARDS[file_name]()), (
        "regenerate with `python -m streams.observability generate`"
    )


def test_generate_check_finds_nothing_stale():
    assert generate.stale() == []


@pytest.mark.parametrize("file_name", FILES)
def test_dashboard_round_trips_through_the_sdk_models(file_name):
    register_default_plugins()
    data = _committed(file_name)
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert again == data


STRUCTURE = {
    "type": "object",
    "required": ["uid", "title", "description", "panels", "templating", "schemaVersion", "refresh", "time", "tags"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 39},
        "refresh": {"type": "string", "pattern": "^[0-9]+[smh]$"},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {"type": {"enum": ["datasource", "query"]}},
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {"enum": ["row", "stat", "timeseries", "table"]},
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                        },
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr", "datasource"],
                            "properties": {"refId": {"type": "string", "pattern": "^[A-Z]$"}},
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("file_name", FILES)
def test_dashboard_has_the_structure_grafana_needs(file_name):
    jsonschema.validate(_committed(file_name), STRUCTURE)


@pytest.mark.parametrize("file_name", FILES)
def test_panels_fit_the_grid_without_overlapping(file_name):
    taken: set[tuple[int, int]] = set()
    for panel in _panels(BUILT[file_name]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


# --- lint (in the spirit of grafana/dashboard-linter) -----------------------------


@pytest.mark.parametrize("file_name", FILES)
def test_dashboard_has_a_prometheus_datasource_variable(file_name):
    variables = {variable["name"]: variable for variable in BUILT[file_name]["templating"]["list"]}
    variable = variables[names.DATASOURCE_VARIABLE]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    assert variable["current"]["value"] == names.DATASOURCE_UID


@pytest.mark.parametrize("file_name", FILES)
def test_panel_ids_are_unique(file_name):
    ids = [panel["id"] for panel in _panels(BUILT[file_name])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("file_name, panel", PANELS, ids=PANEL_IDS)
def test_panel_has_title_description_unit_and_no_value_text(file_name, panel):
    assert panel["title"].strip()
    assert len(panel.get("description", "")) >= 20, "say what the panel shows and how to read it"
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults.get("unit"), "every panel states its unit"
    assert defaults.get("noValue") == dashboards.NO_DATA


@pytest.mark.parametrize("file_name, panel", PANELS, ids=PANEL_IDS)
def test_panel_queries_through_the_datasource_variable(file_name, panel):
    assert panel["datasource"] == DATASOURCE
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE


@pytest.mark.parametrize("file_name, panel", PANELS, ids=PANEL_IDS)
def test_panel_ref_ids_are_explicit_and_unique(file_name, panel):
    ref_ids = [target["refId"] for target in panel["targets"]]
    assert ref_ids == list(dashboards.REF_IDS[: len(ref_ids)])


@pytest.mark.parametrize("file_name, panel", PANELS, ids=PANEL_IDS)
def test_panel_queries_follow_the_conventions(file_name, panel):
    """$__rate_interval in every rate(), _total only inside rate/increase, gauges aggregated, names and labels exist."""
    for target in panel["targets"]:
        assert lint.problems(target["expr"], dashboard=True) == [], target["refId"]


@pytest.mark.parametrize("source, expr", queries.all_queries(), ids=lambda value: value[:80])
def test_every_metric_used_anywhere_is_in_the_catalogue(source, expr):
    references = lint.references(expr)
    unknown = [
        ref.series for ref in references if ref.spec is None and ref.series not in lint.PROMETHEUS_SERIES
    ]
    assert not unknown
    if " variable " in source:
        assert lint.problems(expr, dashboard=True, selector=True) == []


def test_lint_catches_what_it_is_meant_to_catch():
    assert lint.problems("sum (callpulse_holds_total)", dashboard=True)
    assert lint.problems("sum by (queue, channel) (rate(callpulse_holds_total[5m]))", dashboard=True)
    assert lint.problems("sum by (queue, channel) (callpulse_queue_waiting_contacts)", dashboard=True)
    assert lint.problems("max by (queue) (callpulse_queue_waiting_contacts)", dashboard=True)
    assert lint.problems("max by (queue, channel) (callpulse_queue_wating_contacts)", dashboard=True)
    assert lint.problems('max by (queue, channel) (callpulse_queue_waiting_contacts{state="x"})', dashboard=True)
    assert lint.problems("rate(callpulse_queue_waiting_contacts[$__rate_interval])", dashboard=True)
    assert lint.problems("histogram_quantile(0.9, sum by (le) (callpulse_hold_duration_seconds_bucket))", dashboard=True)
    assert not lint.problems("sum by (queue, channel) (rate(callpulse_holds_total[$__rate_interval]))", dashboard=True)


def test_every_catalogue_metric_appears_on_some_dashboard():
    used = {ref.spec.name for _, expr in queries.dashboard_queries() for ref in lint.references(expr) if ref.spec}
    assert set(catalogue.BY_NAME) - used == set()


# --- the three dashboards ----------------------------------------------------------


WALL = BUILT["wall-screen.json"]


def test_wall_screen_is_kiosk_ready():
    assert WALL["uid"] == names.WALL_SCREEN_UID
    assert WALL["refresh"] == "30s"
    assert WALL["timepicker"]["hidden"] is True
    for panel in _visual_panels(WALL):
        assert panel["type"] == "stat"
        assert panel["options"]["colorMode"] == "background"
        assert panel["options"]["reduceOptions"]["calcs"] == ["lastNotNull"]
        assert all(target["instant"] is True and target["range"] is False for target in panel["targets"])


def test_wall_screen_repeats_a_row_per_queue():
    rows = [panel for panel in WALL["panels"] if panel["type"] == "row"]
    assert [row.get("repeat") for row in rows] == ["queue"]
    assert rows[0]["collapsed"] is False
    variable = next(v for v in WALL["templating"]["list"] if v["name"] == "queue")
    assert variable["query"].startswith("label_values(") and variable["includeAll"] is True


def _wall_panel(title: str) -> dict:
    return next(panel for panel in _visual_panels(WALL) if panel["title"] == title)


def _steps(panel: dict) -> list[tuple[float | None, str]]:
    return [(step["value"], step["color"]) for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_wall_screen_colours_use_the_alert_thresholds_with_default_targets():
    defaults = QueueTargets()
    window = thresholds.ALERT_WINDOW
    assert _steps(_wall_panel(f"Service level {window}")) == [(None, "red"), (defaults.target_service_level_ratio, "green")]
    assert _steps(_wall_panel(f"Abandon rate {window}")) == [(None, "green"), (defaults.target_abandon_ratio, "red")]
    assert _steps(_wall_panel("Oldest wait")) == [
        (None, "green"),
        (defaults.service_level_threshold_seconds, "orange"),
        (defaults.target_max_wait_seconds, "red"),
    ]
    assert _steps(_wall_panel("Agents available")) == [(None, "red"), (thresholds.MIN_AVAILABLE_AGENTS, "green")]


def test_wall_screen_shows_every_required_figure():
    exprs = " ".join(target["expr"] for panel in _visual_panels(WALL) for target in panel["targets"])
    for metric in (
        catalogue.QUEUE_WAITING,
        catalogue.QUEUE_OLDEST_WAIT,
        catalogue.WINDOW_SERVICE_LEVEL,
        catalogue.WINDOW_ABANDON_RATIO,
        catalogue.AGENTS,
    ):
        assert metric.name in exprs
    assert f'window="{thresholds.ALERT_WINDOW}"' in exprs


QUEUE = BUILT["queue.json"]


def test_queue_dashboard_has_queue_and_channel_variables():
    variables = {variable["name"]: variable for variable in QUEUE["templating"]["list"]}
    assert variables["queue"]["query"] == f"label_values({catalogue.QUEUE_WAITING.name}, queue)"
    assert variables["channel"]["query"].startswith(f'label_values({catalogue.QUEUE_WAITING.name}{{queue=~"$queue"}}')


def test_queue_dashboard_draws_targets_as_dashed_lines():
    drawn = 0
    for panel in _visual_panels(QUEUE):
        dashed = {override["matcher"]["options"] for override in panel["fieldConfig"]["overrides"]}
        for target in panel["targets"]:
            if "_target_" in target["expr"] or "threshold_seconds" in target["expr"]:
                assert target["refId"] in dashed, panel["title"]
                drawn += 1
    assert drawn >= 5


def test_queue_dashboard_uses_histogram_quantiles_and_all_windows():
    exprs = [target["expr"] for panel in _visual_panels(QUEUE) for target in panel["targets"]]
    assert any(expr.startswith("histogram_quantile(") and "callpulse_queue_wait_seconds_bucket" in expr for expr in exprs)
    windowed = [expr for expr in exprs if "callpulse_window_" in expr and "window=" not in expr]
    assert windowed, "window panels show every window, grouped by the window label"


PIPELINE = BUILT["pipeline.json"]


def test_pipeline_dashboard_shows_consumer_lag_only_if_the_catalogue_has_it():
    exprs = " ".join(target["expr"] for panel in _visual_panels(PIPELINE) for target in panel["targets"])
    has_lag = dashboards.CONSUMER_LAG_METRIC in catalogue.BY_NAME
    assert (dashboards.CONSUMER_LAG_METRIC in exprs) is has_lag
    assert (dashboards.CONSUMER_LAG_METRIC in PIPELINE["description"]) is not has_lag
    assert f'up{{job="{names.SCRAPE_JOB}"}}' in exprs


# --- queries as data for the end-to-end test ----------------------------------------


def test_queries_cover_every_panel_target_and_alert():
    targets = sum(len(panel["targets"]) for _, panel in PANELS)
    assert len(queries.dashboard_queries()) == targets
    assert [source for source, _ in queries.alert_queries()] == [f"alert {rule.name}" for rule in alerts.RULES]


def test_evaluable_queries_have_no_grafana_variables_left():
    for source, expr in queries.evaluable({"queue": "support", "channel": "voice"}):
        assert "$" not in expr, source
        assert "[1m]" in expr or "rate(" not in expr or source.startswith("alert"), source


def test_substitute_rejects_unknown_variables():
    with pytest.raises(KeyError):
        queries.substitute("x{queue=~\"$team\"}")
