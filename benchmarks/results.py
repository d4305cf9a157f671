"""The results of a run: .bench/results.json and the plain-text table printed at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

# The headline numbers, always present in results.json (null when their step did not run).
HEADLINE_KEYS = ("raw_events_per_s", "pipeline_events_per_s", "ratio", "latency_p50_seconds",
                 "latency_p99_seconds", "rss_bytes_100k_contacts")

# (key, label, format) of the table rows, in order; rows whose value is absent are left out.
TABLE_ROWS = (
    ("events", "backlog events", "{:,}"),
    ("raw_events_per_s", "plain aiokafka consumer + orjson, events/s", "{:,.0f}"),
    ("pipeline_events_per_s", "callpulse pipeline (1 worker), events/s", "{:,.0f}"),
    ("ratio", "pipeline / plain consumer", "{:.4f}"),
    ("throughput_runs_pipeline_events_per_s", "pipeline events/s of each run (--repeat)", "{}"),
    ("throughput_median_run", "the run above (median ratio)", "{}"),
    ("pipeline_seconds", "pipeline: ready to last event processed, s", "{:.1f}"),
    ("pipeline_timed_out", "pipeline: timed out", "{}"),
    ("pipeline_events_processed", "pipeline: events processed", "{:,}"),
    ("pipeline_longest_stall_seconds", "pipeline: longest time without progress, s", "{:.0f}"),
    ("cpu_seconds_per_event", "pipeline: worker CPU per event, s", "{:.6f}"),
    ("pipeline_broker_cpu_seconds_per_event", "pipeline: broker CPU per event, s", "{:.6f}"),
    ("pipeline_worker_cpu_share", "pipeline: worker CPU / wall time (cores)", "{:.2f}"),
    ("pipeline_broker_cpu_share", "pipeline: broker CPU / wall time (cores)", "{:.2f}"),
    ("pipeline_harness_cpu_share", "pipeline: harness CPU / wall time (cores)", "{:.2f}"),
    ("pipeline_other_cpu_share", "pipeline: other processes' CPU / wall time (cores)", "{:.2f}"),
    ("pipeline_peak_rss_bytes", "pipeline: worker peak RSS, bytes", "{:,}"),
    ("metrics_scrape_cpu_seconds", "GET /metrics: worker CPU per scrape, s", "{:.4f}"),
    ("latency_probe", "latency: markers watched through", "{}"),
    ("latency_warmup_events", "latency: warm-up events before the load (untimed)", "{:,}"),
    ("latency_offered_events_per_s", "latency: offered load, events/s", "{:,.0f}"),
    ("latency_processed_events_per_s", "latency: processed while offered, events/s", "{:,.0f}"),
    ("latency_backlog_at_end", "latency: events not yet processed when the load stopped", "{:,}"),
    ("latency_worker_cpu_share", "latency: worker CPU / wall time (cores)", "{:.2f}"),
    ("latency_broker_cpu_share", "latency: broker CPU / wall time (cores)", "{:.2f}"),
    ("latency_harness_cpu_share", "latency: harness CPU / wall time (cores)", "{:.2f}"),
    ("latency_other_cpu_share", "latency: other processes' CPU / wall time (cores)", "{:.2f}"),
    ("latency_p50_seconds", "latency: event produced -> on /metrics, p50, s", "{:.3f}"),
    ("latency_p99_seconds", "latency: p99, s", "{:.3f}"),
    ("latency_max_seconds", "latency: max, s", "{:.3f}"),
    ("latency_p50_first_tenth_seconds", "latency: p50 of the first tenth of the markers, s", "{:.3f}"),
    ("latency_p50_last_tenth_seconds", "latency: p50 of the last tenth of the markers, s", "{:.3f}"),
    ("markers", "latency: markers seen", "{:,}"),
    ("markers_missing", "latency: markers never seen", "{:,}"),
    ("markers_on_metrics", "latency: markers counted on /metrics at the end", "{:,}"),
    ("memory_contacts", "memory: contacts in flight", "{:,}"),
    ("memory_peak_rss_bytes", "memory: worker peak RSS with the contacts in flight, bytes", "{:,}"),
    ("memory_baseline_peak_rss_bytes", "memory: worker peak RSS when ready, bytes", "{:,}"),
    ("memory_bytes_per_contact", "memory: peak RSS growth per contact, bytes", "{:,.0f}"),
    ("memory_events_per_s", "memory: contact.queued processed, events/s", "{:,.0f}"),
)


def write_results(path: Path, results: dict) -> None:
    """Write atomically (a reader never sees half a file), headline keys first and always present."""
    ordered = {key: results.get(key) for key in HEADLINE_KEYS}
    ordered.update((key, value) for key, value in results.items() if key not in ordered)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(ordered, indent=2, sort_keys=False) + "\n")
    os.replace(partial, path)


def format_table(results: dict) -> str:
    rows = []
    for key, label, form in TABLE_ROWS:
        value = results.get(key)
        if value is None:
            continue
        rows.append((label, form.format(value)))
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}}  {value:>16}" for label, value in rows)
