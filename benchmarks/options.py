"""Command-line options of `python -m benchmarks`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

STEPS = ("raw", "pipeline", "latency", "memory")
LATENCY_PROBES = ("queues", "metrics")


@dataclass(frozen=True)
class BenchOptions:
    """What one run measures and how big each workload is."""

    steps: tuple[str, ...]
    events: int
    backlog_rate: float
    partitions: int
    latency_rate: float
    latency_seconds: float
    marker_interval_seconds: float
    probe_interval_seconds: float
    latency_probe: str
    load_linger_ms: int
    contacts: int
    timeout_seconds: float
    seed: int
    output: Path
    profile: bool
    producer_max_batch_bytes: int
    repeat: int


def _steps(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in STEPS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}")
    return names


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Throughput, event-to-metric latency and memory of the callpulse pipeline on the "
                    "embedded broker. Steps: raw (plain aiokafka consumer, the ceiling), pipeline "
                    "(one worker over the backlog), latency (steady offered load), memory "
                    "(contacts in flight).")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--only", type=_steps, metavar="STEPS", help="comma-separated steps to run")
    which.add_argument("--skip", type=_steps, metavar="STEPS", default=(), help="comma-separated steps to skip")
    p.add_argument("--events", type=_positive_int, default=300_000, help="backlog size (default 300000)")
    p.add_argument("--backlog-rate", type=_positive_float, default=500.0,
                   help="simulated events/s of the backlog traffic (default 500)")
    p.add_argument("--partitions", type=_positive_int, default=8, help="partitions of every input topic (default 8)")
    p.add_argument("--latency-rate", type=_positive_float, default=2000.0,
                   help="offered load of the latency step, events/s (default 2000)")
    p.add_argument("--latency-seconds", type=_positive_float, default=60.0,
                   help="how long the latency step offers its load (default 60)")
    p.add_argument("--marker-interval", type=_positive_float, default=0.1, dest="marker_interval_seconds",
                   help="seconds between latency markers (default 0.1)")
    p.add_argument("--probe-interval", type=_positive_float, default=0.02, dest="probe_interval_seconds",
                   help="seconds between two looks at the markers' counter in the latency step (default 0.02)")
    p.add_argument("--latency-probe", choices=LATENCY_PROBES, default="queues",
                   help="where the latency step watches the markers' queued counter: "
                        "GET /internal/queues?queue= (default; the queue-table value /metrics exports, "
                        "about 1.5 ms of worker CPU per request) or GET /metrics (the full exposition; "
                        "today about 75 ms of worker CPU per scrape, so looking every 20 ms saturates "
                        "the worker)")
    p.add_argument("--load-linger-ms", type=_non_negative_int, default=50, dest="load_linger_ms",
                   help="linger.ms of the producer that offers the latency step's steady load (default 50);"
                        " markers have their own producer with linger 0, so they are sent at once")
    p.add_argument("--contacts", type=_positive_int, default=100_000,
                   help="contacts in flight for the memory step (default 100000)")
    p.add_argument("--timeout", type=_positive_float, default=1800.0, dest="timeout_seconds",
                   help="longest wait for a worker to finish a workload, seconds (default 1800)")
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument("--output", type=Path, default=Path(".bench/results.json"), help="results file")
    p.add_argument("--producer-max-batch-bytes", type=int, default=0, metavar="BYTES",
                   help="the workers' CALLPULSE_PRODUCER_MAX_BATCH_BYTES (default 0: the worker's own "
                        "default, 1,000,000; 16384 is Faust's)")
    p.add_argument("--repeat", type=_positive_int, default=3,
                   help="runs of the raw and pipeline steps, each on a fresh broker and backlog (default 3):"
                        " single runs of the pipeline differ by up to 20%%, so the headline throughput is"
                        " the run with the median ratio, and results.json lists every run")
    p.add_argument("--profile", action="store_true",
                   help="sample the pipeline worker with py-spy (must be on PATH or in the venv) and "
                        "write .bench/pipeline-profile.txt; sampling costs the worker a little CPU")
    return p


def parse_args(argv: list[str] | None = None) -> BenchOptions:
    args = parser().parse_args(argv)
    chosen = args.only if args.only is not None else STEPS
    steps = tuple(step for step in STEPS if step in chosen and step not in args.skip)
    if not steps:
        parser().error("nothing to run: every step is skipped")
    return BenchOptions(
        steps=steps, events=args.events, backlog_rate=args.backlog_rate, partitions=args.partitions,
        latency_rate=args.latency_rate, latency_seconds=args.latency_seconds,
        marker_interval_seconds=args.marker_interval_seconds,
        probe_interval_seconds=args.probe_interval_seconds, latency_probe=args.latency_probe,
        load_linger_ms=args.load_linger_ms, contacts=args.contacts,
        timeout_seconds=args.timeout_seconds, seed=args.seed, output=args.output, profile=args.profile,
        producer_max_batch_bytes=args.producer_max_batch_bytes, repeat=args.repeat)
