"""One benchmark run: embedded broker, the chosen steps in order, results file and table."""

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


async def run_steps(ctx: steps.BenchContext, results: dict, write) -> None:
    """Each step in order; a failing step is recorded and the others still run."""
    o = ctx.options
    backlog_topic = f"bench-backlog-{ctx.run_id}.contact-events"
    backlog_events = None
    if {"raw", "pipeline"} & set(o.steps):
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
    for step in o.steps:
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


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(options: BenchOptions) -> int:
    from streams.broker import start_broker, stop_broker

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

    port = free_port()
    progress.note(f"starting the embedded broker on 127.0.0.1:{port}")
    broker = start_broker(port=port, log_path=bench_dir / "logs" / "broker.log")
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="callpulse-bench-") as data_root:
            ctx = steps.BenchContext(bootstrap=f"127.0.0.1:{port}", broker_pid=broker.pid, options=options,
                                     run_id=uuid.uuid4().hex[:8], bench_dir=bench_dir,
                                     data_root=Path(data_root), progress=progress)
            try:
                asyncio.run(run_steps(ctx, results, write))
            except KeyboardInterrupt:
                results["interrupted"] = True
                raise
            finally:
                ctx.stop_workers()
    finally:
        stop_broker(broker)
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
