"""A real Prometheus (Debian's package) scraping a worker fed by the simulator.

Checks the exposition with `promtool check metrics`, compares values read
through Prometheus' query API with what the worker reports, and evaluates every
dashboard panel query and alert expression: no query errors, and the wall-screen
and queue panels return data for the simulated queues.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse

import orjson
import pytest
import yaml

from tests.harness import free_port, http_get, wait_for
from tests.integration.test_simulated_traffic import simulated_backlog

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="Debian's prometheus package is not installed (make test installs it when run as root)")


class Prometheus:
    def __init__(self, tmp, target: str, rule_files: list[str]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rule_files,
            "scrape_configs": [{"job_name": "callpulse", "static_configs": [{"targets": [target]}]}],
        }
        self.config_path = tmp / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "prometheus.log"
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config_path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url)
        answer = orjson.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"query failed ({status}): {expr}\n{answer.get('error')}")
        return answer["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture
def fed_worker(stack):
    # Not drained: arrivals run up to ~now, as on a live wall screen (some contacts still wait).
    messages = simulated_backlog(seed=5, duration_seconds=600, drain=False)
    worker = stack.worker().start()
    stack.produce((m.key, m.value) for m in messages)

    def processed():
        status, body = worker.get_json("/queues")
        return status == 200 and body["queues"] and all(
            r["totals"]["contacts_answered"] > 0 for r in body["queues"])
    wait_for(processed, 420, interval=0.5, message="the simulated backlog processed")
    return worker


@needs_prometheus
def test_promtool_accepts_the_exposition(fed_worker):
    text = fed_worker.metrics_text()
    assert "callpulse_window_service_level_ratio" in text
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_prometheus
def test_prometheus_scrapes_the_worker_and_every_dashboard_and_alert_query_runs(fed_worker, tmp_path):
    from streams.observability import queries
    from streams.observability.generate import PROMETHEUS_RULES, REPO_ROOT

    prometheus = Prometheus(tmp_path, f"127.0.0.1:{fed_worker.port}", [str(REPO_ROOT / PROMETHEUS_RULES)])
    try:
        wait_for(lambda: prometheus.query('callpulse_contacts_queued_total'), 60,
                 message="Prometheus has scraped the worker")
        # Values through Prometheus equal what the worker reports.
        status, body = fed_worker.get_json("/queues")
        worker_totals = {(r["queue"], r["channel"]): r["totals"] for r in body["queues"]}
        scraped = {(s["metric"]["queue"], s["metric"]["channel"]): float(s["value"][1])
                   for s in prometheus.query("callpulse_contacts_answered_total")}
        assert scraped == {k: float(v["contacts_answered"]) for k, v in worker_totals.items()}
        targets = prometheus.query("callpulse_queue_target_service_level_ratio")
        assert {(s["metric"]["queue"], s["metric"]["channel"]) for s in targets} == set(worker_totals)
        up = prometheus.query('up{job="callpulse"}')
        assert [float(s["value"][1]) for s in up] == [1.0]

        # Let rate() windows gather a few scrapes, then evaluate everything.
        wait_for(lambda: prometheus.query("rate(callpulse_events_total[1m])"), 30,
                 message="rates available")
        # All simulated queues: a quiet queue legitimately has no 5m ratios (zero denominators
        # are not exported), so "returns data" is asked of the queues together.
        simulated = "|".join(sorted({queue for queue, _ in worker_totals}))
        errors, empty = [], []
        for source, expr in queries.evaluable({"queue": simulated}):
            try:
                result = prometheus.query(expr)
            except AssertionError as problem:
                errors.append(f"{source}: {problem}")
                continue
            needs_data = source.startswith("dashboard") and ("wall" in source or "queue" in source)
            if needs_data and not result:
                empty.append(f"{source}: {expr}")
        assert not errors, "\n".join(errors)
        assert not empty, "panels without data for the simulated queues:\n" + "\n".join(empty)
    finally:
        prometheus.stop()
