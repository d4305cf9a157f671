"""Dashboards, alert rules and their queries, generated from the metric catalogue.

`python -m streams.observability generate` writes every artefact this package
owns (Grafana dashboards, Prometheus and Grafana alert rules); tests compare the
committed files with a fresh generation so they never drift from the code.
"""
