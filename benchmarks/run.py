"""One benchmark run: the chosen steps in order on embedded brokers, results file and table."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import steps
from benchmarks.options import BenchOptions, parse_args
from benchmarks.progress import Progress
from benchmarks.results import format_table, write_results
from benchmarks.stats import ratio
from benchmarks.worker import free_port

REPO = Path(__file__).resolve().parents[1]


def git_state() -> dict:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def broker_groups(chosen: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Steps that share one embedded broker: raw and pipeline read the same backlog; the others start fresh.

    The embedded broker slows down as record batches pile up in it, so no step
    should inherit the topics of another.
    """
    groups = [tuple(step for step in ("raw", "pipeline") if step in chosen)]
    groups += [(step,) for step in ("latency", "memory") if step in chosen]
    return [group for group in groups if group]


async def run_group(ctx: steps.BenchContext, group: tuple[str, ...], results: dict, write) -> None:
    """The steps of one broker in order; a failing step is recorded and the others still run."""
    backlog_topic = f"bench-backlog-{ctx.run_id}.contact-events"
    backlog_events = None
    if {"raw", "pipeline"} & set(group):
        started = time.monotonic()
        preload = await steps.preload_backlog(ctx, backlog_topic)
        results.update(preload)
        results["step_seconds"]["preload"] = time.monotonic() - started
        backlog_events = preload["events"]
        write()
    plan = {
        "raw": lambda: steps.plain_consumer(ctx, backlog_topic, backlog_events),
        "pipeline": lambda: steps.pipeline_throughput(ctx, backlog_topic, backlog_events),
        "latency": lambda: steps.event_to_metric_latency(ctx),
        "memory": lambda: steps.memory_in_flight(ctx),
    }
    for step in group:
        ctx.progress.note(f"step {step}")
        started = time.monotonic()
        try:
            results.update(await plan[step]())
        except Exception as problem:
            ctx.progress.note(f"step {step} failed: {problem}")
            results["errors"][step] = "".join(traceback.format_exception_only(problem)).strip()
            traceback.print_exc()
        results["step_seconds"][step] = time.monotonic() - started
        results["ratio"] = ratio(results.get("pipeline_events_per_s"), results.get("raw_events_per_s"))
        write()


# Per run of the throughput steps, what results.json lists under "throughput_runs".
RUN_SUMMARY_KEYS = ("raw_events_per_s", "pipeline_events_per_s", "ratio", "cpu_seconds_per_event",
                    "pipeline_longest_stall_seconds", "pipeline_peak_rss_bytes", "pipeline_other_cpu_share")


def median_run(runs: list[dict]) -> dict | None:
    """The run with the median ratio (the lower middle one of an even count); None if no run has a ratio.

    A whole run rather than the median of each number, so the headline's raw rate,
    pipeline rate and ratio come from one run on one broker, as the ratio needs.
    """
    measured = sorted((run for run in runs if run.get("ratio") is not None), key=lambda run: run["ratio"])
    return measured[(len(measured) - 1) // 2] if measured else None


async def run_throughput(options: BenchOptions, group: tuple[str, ...], results: dict, write, progress: Progress,
                         data_root: Path, run_id: str) -> None:
    """The raw and pipeline steps `options.repeat` times, each on a fresh broker; the median run is the headline."""
    runs: list[dict] = []
    results["throughput_runs"] = []
    for index in range(options.repeat):
        label = f"-run{index + 1}" if options.repeat > 1 else ""
        if options.repeat > 1:
            progress.note(f"throughput run {index + 1} of {options.repeat}")
        # Only the first run is profiled: one profile is enough, and sampling costs the worker CPU.
        run_options = options if index == 0 else replace(options, profile=False)
        run: dict = {"step_seconds": {}, "errors": {}}
        await run_on_broker(run_options, group, run, write, progress, data_root,
                            f"{run_id}-{index + 1}" if label else run_id, label)
        runs.append(run)
        for step, seconds in run["step_seconds"].items():
            results["step_seconds"][step] = results["step_seconds"].get(step, 0.0) + seconds
        for step, error in run["errors"].items():
            results["errors"][f"{step}{label}"] = error
        results["throughput_runs"].append({key: run.get(key) for key in RUN_SUMMARY_KEYS})
        median = median_run(runs)
        headline = median or run
        results.update({key: value for key, value in headline.items() if key not in ("step_seconds", "errors")})
        results["pipeline_profiled"] = runs[0].get("pipeline_profiled")  # the profile is the first run's
        results["throughput_median_run"] = runs.index(median) + 1 if median is not None else None
        results["throughput_runs_pipeline_events_per_s"] = " / ".join(
            f"{run['pipeline_events_per_s']:,.0f}" if run.get("pipeline_events_per_s") else "-" for run in runs)
        write()
    if options.repeat > 1 and results["throughput_median_run"] is not None:
        ratios = ", ".join(f"{run['ratio']:.4f}" for run in runs if run.get("ratio") is not None)
        progress.note(f"throughput: ratios of the {options.repeat} runs {ratios};"
                      f" the headline is run {results['throughput_median_run']} (the median)")


async def run_on_broker(options: BenchOptions, group: tuple[str, ...], results: dict, write, progress: Progress,
                        data_root: Path, run_id: str, label: str = "") -> None:
    from streams.broker import start_broker, stop_broker

    bench_dir = options.output.parent
    port = free_port()
    name = "-".join(group)
    progress.note(f"starting an embedded broker on 127.0.0.1:{port} for {name}")
    broker = start_broker(port=port, log_path=bench_dir / "logs" / f"broker-{name}{label}.log")
    ctx = steps.BenchContext(bootstrap=f"127.0.0.1:{port}", broker_pid=broker.pid, options=options,
                             run_id=run_id, bench_dir=bench_dir, data_root=data_root, progress=progress,
                             label=label)
    try:
        await run_group(ctx, group, results, write)
    finally:
        ctx.stop_workers()
        stop_broker(broker)


async def run_all(options: BenchOptions, results: dict, write, progress: Progress, data_root: Path) -> None:
    run_id = uuid.uuid4().hex[:8]
    for group in broker_groups(options.steps):
        if {"raw", "pipeline"} & set(group):
            await run_throughput(options, group, results, write, progress, data_root, run_id)
        else:
            await run_on_broker(options, group, results, write, progress, data_root, run_id)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(options: BenchOptions) -> int:
    # `kill <pid>` stops the run like Ctrl-C: workers and broker are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    bench_dir = options.output.parent
    shutil.rmtree(bench_dir / "logs", ignore_errors=True)
    (bench_dir / "logs").mkdir(parents=True)
    progress = Progress()
    results: dict = {
        "started_at": utc_now(),
        **git_state(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg()},
        "options": {key: (str(value) if isinstance(value, Path) else value)
                    for key, value in vars(options).items()},
        "step_seconds": {},
        "errors": {},
    }

    def write() -> None:
        write_results(options.output, results)

    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="callpulse-bench-") as data_root:
            asyncio.run(run_all(options, results, write, progress, Path(data_root)))
    except KeyboardInterrupt:
        results["interrupted"] = True
        raise
    finally:
        results["finished_at"] = utc_now()
        results["machine"]["load_average_at_end"] = os.getloadavg()
        results["total_seconds"] = time.monotonic() - started
        write()
    print(format_table(results))
    print(f"\nresults: {options.output}" + (f"; failed steps: {', '.join(results['errors'])}"
                                            if results["errors"] else ""))
    return 1 if results["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv if argv is not None else sys.argv[1:]))
