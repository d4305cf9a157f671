"""The benchmark harness's pure helpers: percentiles, /metrics and /proc parsing, options, results."""

from __future__ import annotations

import json

import orjson
import pytest

from benchmarks import procfs
from benchmarks.options import STEPS, parse_args
from benchmarks.profile import summarise
from benchmarks.results import HEADLINE_KEYS, format_table, write_results
from benchmarks.scrape import accounted_events, queue_total, sample_sum
from benchmarks.stats import percentile, ratio
from benchmarks.steps import POLL_SECONDS, SLOW_POLL_SECONDS, next_poll_seconds
from benchmarks.workload import MARKER_QUEUE, marker_message, queued_contacts


@pytest.mark.parametrize(("q", "expected"), [(0, 1.0), (50, 2.5), (100, 4.0), (25, 1.75), (99, 3.97)])
def test_percentile_interpolates_between_closest_ranks(q, expected):
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentile_of_one_value_is_that_value():
    assert percentile([0.25], 99) == 0.25


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_percentile_rejects_q_outside_0_100():
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ratio_is_none_without_both_numbers():
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, 4.0) == 0.25


METRICS = """# HELP callpulse_events_total Valid input events processed.
# TYPE callpulse_events_total counter
callpulse_events_total{type="contact.queued"} 120.0
callpulse_events_total{type="agent.state_changed"} 30.0
callpulse_events_duplicate_total 2.0
callpulse_events_rejected_total{reason="not_json"} 1.0
callpulse_events_rejected_total{reason="unknown_type"} 0.0
callpulse_events_late_total 5.0
callpulse_contacts_queued_total{channel="voice",queue="bench-latency"} 7.0
callpulse_contacts_queued_total{channel="chat",queue="bench-latency"} 1.0
callpulse_contacts_queued_total{channel="voice",queue="bench-latency-2"} 40.0
callpulse_contacts_queued_total{channel="voice",queue="support"} 9.0
callpulse_tracked_contacts 1.0e+05
"""


def test_sample_sum_adds_every_series_of_a_name():
    assert sample_sum(METRICS, "callpulse_events_total") == 150.0


def test_sample_sum_matches_label_values_exactly():
    assert sample_sum(METRICS, "callpulse_contacts_queued_total", queue="bench-latency") == 8.0
    assert sample_sum(METRICS, "callpulse_contacts_queued_total", queue="bench-latency", channel="chat") == 1.0


def test_sample_sum_reads_unlabelled_samples_and_exponents():
    assert sample_sum(METRICS, "callpulse_tracked_contacts") == 100_000
    assert sample_sum(METRICS, "callpulse_events_missing_total") == 0.0


def test_accounted_events_is_processed_plus_duplicate_plus_rejected():
    assert accounted_events(METRICS) == 150.0 + 2.0 + 1.0


def test_queue_total_sums_the_channels_of_a_queue():
    body = orjson.dumps([{"channel": "voice", "totals": {"contacts_queued": 3}},
                         {"channel": "chat", "totals": {"contacts_queued": 2}}])
    assert queue_total(body, "contacts_queued") == 5
    assert queue_total(b"[]", "contacts_queued") == 0


def test_stat_cpu_seconds_survive_a_command_name_with_spaces_and_parens():
    stat = "4242 (python (worker) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 5 0 100 0 0"
    assert procfs.parse_stat_cpu_seconds(stat, ticks_per_second=100) == 3.0


def test_status_fields_are_read_in_bytes():
    status = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
    assert procfs.parse_status_bytes(status, "VmHWM") == 204800 * 1024
    assert procfs.parse_status_bytes(status, "VmSwap") is None


def test_this_process_has_cpu_time_and_memory():
    import os

    assert procfs.cpu_seconds(os.getpid()) > 0
    assert procfs.memory_bytes(os.getpid())["peak_rss_bytes"] > 0


def test_default_options_run_every_step_at_full_size():
    options = parse_args([])
    assert options.steps == STEPS
    assert options.events == 300_000
    assert options.partitions == 8
    assert (options.latency_rate, options.latency_seconds) == (2000.0, 60.0)
    assert options.contacts == 100_000
    assert options.latency_probe == "queues"
    assert options.load_linger_ms == 50
    assert options.producer_max_batch_bytes == 0
    assert options.repeat == 3


def test_skip_and_only_choose_steps_in_run_order():
    assert parse_args(["--events", "20000", "--skip", "latency,memory"]).steps == ("raw", "pipeline")
    assert parse_args(["--only", "memory,raw"]).steps == ("raw", "memory")


@pytest.mark.parametrize("argv", [["--only", "speed"], ["--skip", ",".join(STEPS)], ["--events", "0"],
                                  ["--only", "raw", "--skip", "memory"], ["--latency-probe", "grafana"],
                                  ["--load-linger-ms", "-1"], ["--repeat", "0"]])
def test_bad_options_stop_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(argv)
    assert stopped.value.code == 2


def test_results_file_has_every_headline_key_first(tmp_path):
    path = tmp_path / "nested" / "results.json"
    write_results(path, {"events": 10, "raw_events_per_s": 1000.0, "errors": {}})
    written = json.loads(path.read_text())
    assert list(written)[:len(HEADLINE_KEYS)] == list(HEADLINE_KEYS)
    assert written["raw_events_per_s"] == 1000.0
    assert written["pipeline_events_per_s"] is None
    assert written["events"] == 10
    assert not list(path.parent.glob("*.partial"))


def test_results_file_is_replaced_by_a_newer_run(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, {"events": 1})
    write_results(path, {"events": 2})
    assert json.loads(path.read_text())["events"] == 2


def test_table_shows_only_what_was_measured():
    table = format_table({"events": 300_000, "raw_events_per_s": 150_000.4, "pipeline_events_per_s": None})
    assert "300,000" in table
    assert "150,000" in table
    assert "pipeline (1 worker)" not in table


def test_polls_are_rare_far_from_the_end_and_frequent_near_it():
    assert next_poll_seconds(remaining=100_000, rate=1000.0) == SLOW_POLL_SECONDS
    assert next_poll_seconds(remaining=100, rate=1000.0) == POLL_SECONDS
    assert next_poll_seconds(remaining=100_000, rate=None) == POLL_SECONDS


def test_markers_are_queue_entries_of_their_own_contacts():
    key, value = marker_message("run1", 3, 1_795_852_800_000)
    event = orjson.loads(value)
    assert key == event["contact_id"].encode()
    assert event["type"] == "contact.queued"
    assert event["queue"] == MARKER_QUEUE
    assert event["event_id"] != orjson.loads(marker_message("run1", 4, 1_795_852_800_000)[1])["event_id"]


def test_contacts_in_flight_are_distinct_and_valid_v1_events():
    from streams.contract.events import parse_event

    messages = queued_contacts(50, "run1", end_ms=1_795_852_800_000)
    events = [parse_event(value) for _, value in messages]
    assert len({event.contact_id for event in events}) == 50
    assert all(event.type == "contact.queued" for event in events)
    assert max(event.occurred_at_ms for event in events) < 1_795_852_800_000


def test_profile_summary_shares_self_and_inclusive_time():
    raw = ("run (asyncio/base_events.py);on_input (streams/pipeline.py);loads (json/__init__.py) 30\n"
           "run (asyncio/base_events.py);take (faust/streams.py) 70\n")
    summary = summarise(raw)
    assert summary["samples"] == 100
    assert dict(summary["self"]) == {"take (faust/streams.py)": 0.7, "loads (json/__init__.py)": 0.3}
    assert dict(summary["packages"]) == {"faust": 0.7, "json": 0.3}
    assert "run (asyncio/base_events.py)" not in dict(summary["inclusive"])
    assert dict(summary["inclusive"])["on_input (streams/pipeline.py)"] == 0.3
    assert dict(summary["callpulse"]) == {"on_input (streams/pipeline.py)": 0.3}


def test_backlog_is_exactly_the_asked_number_of_simulated_events_ending_by_end_ms():
    from benchmarks.workload import simulated_traffic

    end_ms = 1_795_852_800_000
    traffic = simulated_traffic(300, rate=50, seed=1, end_ms=end_ms)
    assert len(traffic.messages) == 300 == sum(traffic.types.values())
    assert traffic.first_event_ms < traffic.last_event_ms <= end_ms
    assert all(orjson.loads(value)["event_id"] for _, value in traffic.messages)


def test_system_busy_time_leaves_out_idle_and_iowait():
    stat = "cpu  100 20 30 5000 70 5 5 0 0 0\ncpu0 50 10 15 2500 35 2 3 0 0 0\n"
    assert procfs.parse_system_busy_seconds(stat, ticks_per_second=100) == 1.6


@pytest.mark.parametrize(("chosen", "groups"), [
    (STEPS, [("raw", "pipeline"), ("latency",), ("memory",)]),
    (("pipeline", "memory"), [("pipeline",), ("memory",)]),
    (("latency",), [("latency",)]),
])
def test_each_step_gets_a_fresh_broker_except_the_two_sharing_the_backlog(chosen, groups):
    from benchmarks.run import broker_groups

    assert broker_groups(chosen) == groups


def test_a_warmup_takes_the_first_simulated_seconds_and_leaves_the_asked_number_after_them():
    from benchmarks.workload import simulated_traffic

    start_ms = 1_795_852_800_000
    traffic = simulated_traffic(300, rate=200, seed=1, start_ms=start_ms, warmup_seconds=5)
    assert len(traffic.messages) == 300 == sum(traffic.types.values())
    from streams.contract.events import parse_event

    assert traffic.warmup
    assert all(parse_event(value).occurred_at_ms < start_ms + 5_000 for _, value in traffic.warmup)
    assert all(parse_event(value).occurred_at_ms >= start_ms + 5_000 for _, value in traffic.messages)
    assert traffic.first_event_ms >= start_ms + 5_000
    without = simulated_traffic(300, rate=200, seed=1, start_ms=start_ms)
    assert without.warmup == []


def test_the_headline_run_is_the_one_with_the_median_ratio():
    from benchmarks.run import median_run

    runs = [{"ratio": 0.09, "pipeline_events_per_s": 15_000}, {"ratio": 0.07, "pipeline_events_per_s": 12_000},
            {"ratio": 0.08, "pipeline_events_per_s": 14_000}]
    assert median_run(runs) is runs[2]
    assert median_run(runs[:2]) is runs[1]  # an even count: the lower middle run
    assert median_run([{"ratio": None}, runs[0]]) is runs[0]  # a run that measured no ratio is left out
    assert median_run([{"ratio": None}]) is None
