"""Alert rules: generated files are current, promtool accepts and unit-tests them, routing is right.

promtool and amtool come from Debian's `prometheus` and `prometheus-alertmanager`
packages; tests that need them skip (saying which package) when they are missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.observability import alerts, generate, lint, names

ROOT = generate.REPO_ROOT
RULE_FILE = ROOT / generate.PROMETHEUS_RULES
GRAFANA_FILE = ROOT / generate.GRAFANA_RULES
RULE_TESTS = ROOT / "deploy/prometheus/tests/callpulse-alerts.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
RENDER_SCRIPT = ROOT / "deploy/alertmanager/render-config.sh"
OPERATIONS = ROOT / "docs/operations.md"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package})")
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return _tool("promtool", "prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return _tool("amtool", "prometheus-alertmanager")


def _run(*command: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **options)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _prometheus_rules() -> dict[str, dict]:
    return {rule["alert"]: rule for group in _load(RULE_FILE)["groups"] for rule in group["rules"]}


def _grafana_rules() -> dict[str, dict]:
    return {rule["title"]: rule for group in _load(GRAFANA_FILE)["groups"] for rule in group["rules"]}


# --- generated files -------------------------------------------------------------


def test_committed_rule_files_equal_a_fresh_generation():
    stale = [str(path) for path in generate.stale() if path.suffix in (".yml", ".yaml")]
    assert not stale, f"regenerate with `python -m streams.observability generate`: {stale}"


def test_every_required_alert_is_defined():
    assert set(alerts.BY_NAME) == {
        "ServiceLevelBelowTarget",
        "AbandonRateAboveTarget",
        "OldestWaitAboveMaximum",
        "ContactsWaitingNoAgentAvailable",
        "HoldAbandonsSpike",
        "PipelineStalled",
        "InputRejected",
        "CallpulseWorkerDown",
        "Watchdog",
    }


@pytest.mark.parametrize("rule", alerts.RULES, ids=lambda rule: rule.name)
def test_rule_has_severity_annotations_and_durations(rule):
    written = _prometheus_rules()[rule.name]
    assert re.fullmatch(r"[A-Z][A-Za-z]+", rule.name), "alert names are CamelCase"
    assert written["labels"]["severity"] in {"critical", "warning", "info"}
    assert set(written["annotations"]) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert "{{" not in written["annotations"]["summary"], "summary is static; details go in the description"
    assert "for" in written and "keep_firing_for" in written
    assert written["annotations"]["runbook_url"] == f"docs/operations.md#{rule.name.lower()}"
    assert written["annotations"]["dashboard_url"].startswith(f"{names.DEFAULT_GRAFANA_URL}/d/")


@pytest.mark.parametrize("rule", [r for r in alerts.RULES if r.name != "Watchdog"], ids=lambda rule: rule.name)
def test_description_is_templated(rule):
    assert "{{" in rule.description


def test_only_the_watchdog_is_info_and_it_always_fires():
    info = [rule.name for rule in alerts.RULES if rule.severity is alerts.Severity.INFO]
    assert info == ["Watchdog"]
    assert alerts.BY_NAME["Watchdog"].expr == "vector(1)"


@pytest.mark.parametrize(
    "name, target",
    [
        ("ServiceLevelBelowTarget", "callpulse_queue_target_service_level_ratio"),
        ("AbandonRateAboveTarget", "callpulse_queue_target_abandon_ratio"),
        ("OldestWaitAboveMaximum", "callpulse_queue_target_max_wait_seconds"),
    ],
)
def test_per_queue_thresholds_are_joined_from_target_gauges(name, target):
    expr = alerts.BY_NAME[name].expr
    assert target in expr
    assert "on (queue, channel) group_left ()" in expr
    assert not re.search(r"[<>]=?\s*0\.\d", expr), "the threshold must come from the target gauge"


@pytest.mark.parametrize("rule", alerts.RULES, ids=lambda rule: rule.name)
def test_rule_queries_follow_the_conventions(rule):
    assert lint.problems(rule.expr, dashboard=False) == []


def test_runbook_has_a_section_for_every_alert():
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    missing = [rule.runbook_anchor for rule in alerts.RULES if rule.runbook_anchor not in headings]
    assert not missing, f"docs/operations.md lacks sections for {missing}"


# --- Grafana-managed alternative -------------------------------------------------


def test_grafana_rules_match_the_prometheus_rules():
    prometheus, grafana = _prometheus_rules(), _grafana_rules()
    assert list(grafana) == list(prometheus)
    for name, rule in prometheus.items():
        mirrored = grafana[name]
        query = next(item for item in mirrored["data"] if item["refId"] == "A")
        assert query["model"]["expr"] == rule["expr"], name
        assert query["datasourceUid"] == names.DATASOURCE_UID
        assert mirrored["for"] == rule["for"], name
        assert mirrored["keepFiringFor"] == rule["keep_firing_for"], name
        assert mirrored["labels"] == rule["labels"], name
        assert mirrored["annotations"]["summary"] == rule["annotations"]["summary"]
        assert mirrored["annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]
        assert mirrored["annotations"]["description"] == rule["annotations"]["description"].replace(
            "$value ", "$values.A.Value "
        )


def test_grafana_file_has_the_provisioning_shape():
    data = _load(GRAFANA_FILE)
    assert data["apiVersion"] == 1
    for group in data["groups"]:
        assert set(group) == {"orgId", "name", "folder", "interval", "rules"}
        for rule in group["rules"]:
            assert {"uid", "title", "condition", "data", "for", "labels", "annotations", "noDataState", "execErrState"} <= set(rule)
            assert len(rule["uid"]) <= 40
            assert rule["condition"] in {item["refId"] for item in rule["data"]}
            assert rule["noDataState"] == "OK", "the PromQL filters: no series means nothing breaches"
            for item in rule["data"]:
                assert {"refId", "relativeTimeRange", "datasourceUid", "model"} <= set(item)
    uids = [rule["uid"] for group in data["groups"] for rule in group["rules"]]
    assert len(uids) == len(set(uids))


def test_grafana_rules_are_not_provisioned_while_prometheus_pages():
    """Both paths at once would page twice for every alert."""
    active = ROOT / "grafana/provisioning/alerting"
    provisioned = list(active.glob("*.y*ml")) if active.exists() else []
    assert not provisioned, f"Grafana would load {provisioned} while Prometheus rules are active"
    assert "rules/*.yml" in _load(PROMETHEUS_CONFIG)["rule_files"]
    assert GRAFANA_FILE.parent.name == "alerting-disabled"


# --- promtool --------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_rule_file(promtool):
    result = _run(promtool, "check", "rules", str(RULE_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.RULES)} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool):
    result = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_every_alert_firing_and_quiet():
    cases = [case for test in _load(RULE_TESTS)["tests"] for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == set(alerts.BY_NAME), f"no firing case for {set(alerts.BY_NAME) - firing}"
    assert quiet == set(alerts.BY_NAME) - {"Watchdog"}, f"no quiet case for {set(alerts.BY_NAME) - quiet}"


def test_promtool_check_config_accepts_the_prometheus_config(promtool):
    result = _run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_workers_under_the_job_the_rules_use():
    jobs = {job["job_name"] for job in _load(PROMETHEUS_CONFIG)["scrape_configs"]}
    assert names.SCRAPE_JOB in jobs


# --- Alertmanager ----------------------------------------------------------------


def test_amtool_check_config_accepts_the_alertmanager_config(amtool):
    result = _run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def _severity(name: str) -> str:
    return alerts.BY_NAME[name].severity.value


ROUTES = [
    *[
        ({"alertname": rule.name, "severity": rule.severity.value, "queue": "support", "channel": "voice"},
         {"critical": "pager", "warning": "team"}[rule.severity.value])
        for rule in alerts.RULES
        if rule.name != "Watchdog"
    ],
    ({"alertname": "Watchdog", "severity": _severity("Watchdog")}, "watchdog"),
    # An unknown severity still reaches someone.
    ({"alertname": "SomethingNew", "severity": "info"}, "team"),
]


@pytest.mark.parametrize("labels, receiver", ROUTES, ids=lambda value: value if isinstance(value, str) else value["alertname"])
def test_alert_routes_to_its_receiver(amtool, labels, receiver):
    result = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{key}={value}" for key, value in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_alertmanager_config_holds_no_real_endpoint():
    urls = [
        config["url"]
        for receiver in _load(ALERTMANAGER_CONFIG)["receivers"]
        for config in receiver.get("webhook_configs", [])
    ]
    assert urls and all(re.fullmatch(r"http://[a-z-]+\.invalid/", url) for url in urls)


def test_render_script_substitutes_webhook_urls_from_the_environment(amtool, tmp_path):
    rendered = tmp_path / "alertmanager.yml"
    critical = "https://pager.example.com/hook?service=callpulse&key=a|b"
    result = _run(
        "sh",
        str(RENDER_SCRIPT),
        env={
            "PATH": "/usr/bin:/bin",
            "CALLPULSE_ALERTMANAGER_TEMPLATE": str(ALERTMANAGER_CONFIG),
            "CALLPULSE_ALERTMANAGER_CONFIG": str(rendered),
            "CALLPULSE_ALERTMANAGER_BIN": "true",
            "CALLPULSE_ALERT_WEBHOOK_CRITICAL_URL": critical,
        },
    )
    assert result.returncode == 0, result.stderr
    urls = {
        receiver["name"]: receiver["webhook_configs"][0]["url"] for receiver in _load(rendered)["receivers"]
    }
    assert urls == {
        "pager": critical,
        "team": "http://callpulse-alert-warning.invalid/",
        "watchdog": "http://callpulse-alert-watchdog.invalid/",
    }
    check = _run(amtool, "check-config", str(rendered))
    assert check.returncode == 0, check.stdout + check.stderr
