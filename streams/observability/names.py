"""Identifiers shared by the generated artefacts and the deployment files that load them.

Dashboards link to each other and alerts link to dashboards and runbooks by these
names; the provisioning and scrape configuration under deploy/ and grafana/ must
use the same ones (tests check that they do).
"""

from __future__ import annotations

# Prometheus scrape job of the workers: `up{job="callpulse"}`.
SCRAPE_JOB = "callpulse"

# Grafana datasource provisioned from grafana/provisioning/datasources/prometheus.yaml.
DATASOURCE_UID = "callpulse-prometheus"
# Name of the dashboards' datasource variable; every panel queries through it.
DATASOURCE_VARIABLE = "datasource"

WALL_SCREEN_UID = "callpulse-wall-screen"
QUEUE_UID = "callpulse-queue"
PIPELINE_UID = "callpulse-pipeline"

# Folder and tag every callpulse dashboard and Grafana-managed rule lives under.
GRAFANA_FOLDER = "callpulse"

# Where alert links point by default (the docker-compose Grafana and the runbook in
# this repository); `generate --grafana-url/--runbook-url` overrides them.
DEFAULT_GRAFANA_URL = "http://localhost:3000"
DEFAULT_RUNBOOK_URL = "docs/operations.md"
