"""The four measurements: plain-consumer ceiling, pipeline throughput, event-to-metric latency, memory."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import procfs
from benchmarks.kafka import batching_producer, consume_and_parse, create_topic, produce
from benchmarks.options import BenchOptions
from benchmarks.profile import format_summary, start_profiler, stop_profiler, summarise
from benchmarks.progress import Progress
from benchmarks.scrape import accounted_events, queue_total, sample_sum
from benchmarks.stats import per_second, percentile, ratio
from benchmarks.worker import BenchWorker
from benchmarks.workload import MARKER_QUEUE, marker_message, queued_contacts, simulated_traffic

POLL_SECONDS = 0.5
# A /metrics scrape costs the worker up to a second of CPU with a big state: far from the end, look rarely.
SLOW_POLL_SECONDS = 5.0
PACE_SECONDS = 0.005
SETTLE_SECONDS = 5.0
# The latency step's untimed warm-up: the simulated shift's first seconds, when most agents log in.
LATENCY_WARMUP_SIMULATED_SECONDS = 15.0


@dataclass
class BenchContext:
    """What every step shares: the broker, the options, where files go, the workers to clean up."""

    bootstrap: str
    broker_pid: int
    options: BenchOptions
    run_id: str
    bench_dir: Path
    data_root: Path
    progress: Progress
    label: str = ""  # added to the names of the workers' log files (e.g. "-run2" of repeated runs)
    workers: list[BenchWorker] = field(default_factory=list)

    def worker(self, name: str, input_topic: str) -> BenchWorker:
        app_id = f"bench-{name}-{self.run_id}"
        worker = BenchWorker(self.bootstrap, app_id, input_topic, self.options.partitions,
                             self.data_root / app_id, self.bench_dir / "logs" / f"{name}{self.label}.log",
                             self.options.producer_max_batch_bytes)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()


class CpuMeter:
    """CPU used by the worker, the broker, this harness and everything else on the machine, over a span.

    Other engineers' processes share the machine; `other` says how much they took.
    """

    def __init__(self, worker: BenchWorker, broker_pid: int) -> None:
        self.worker = worker
        self.broker_pid = broker_pid
        self.start = self._read()

    def _read(self) -> tuple:
        return (time.monotonic(), self.worker.cpu_seconds(), procfs.cpu_seconds(self.broker_pid),
                time.process_time(), procfs.system_busy_seconds())

    def shares(self, prefix: str) -> dict:
        """CPU seconds of each over the span, and per wall second (1.0 = one core)."""
        wall, worker, broker, harness, system = (end - start if None not in (start, end) else None
                                                 for start, end in zip(self.start, self._read()))
        other = system - worker - broker - harness if None not in (system, worker, broker) else None
        used = {"worker": worker, "broker": broker, "harness": harness, "other": other}
        results = {f"{prefix}_{name}_cpu_seconds": value for name, value in used.items()}
        results.update({f"{prefix}_{name}_cpu_share": ratio(value, wall) for name, value in used.items()})
        return results


def now_ms() -> int:
    return int(time.time() * 1000)


async def preload_backlog(ctx: BenchContext, topic: str) -> dict:
    """The simulator's traffic for the last few minutes, written to an input topic as producers would."""
    o = ctx.options
    started = time.perf_counter()
    traffic = simulated_traffic(o.events, o.backlog_rate, o.seed, end_ms=now_ms())
    generated = time.perf_counter() - started
    ctx.progress.note(f"generated {len(traffic.messages):,} events in {generated:.1f} s; producing to {topic}")
    await create_topic(ctx.bootstrap, topic, o.partitions)
    produce_seconds = await produce(ctx.bootstrap, topic, traffic.messages, ctx.progress)
    ctx.progress.note(f"backlog of {len(traffic.messages):,} events produced in {produce_seconds:.1f} s")
    return {
        "events": len(traffic.messages),
        "event_types": dict(traffic.types.most_common()),
        "backlog_bytes": sum(len(value) for _, value in traffic.messages),
        "backlog_event_span_seconds": (traffic.last_event_ms - traffic.first_event_ms) / 1000,
        "preload_generate_seconds": generated,
        "preload_produce_seconds": produce_seconds,
    }


async def plain_consumer(ctx: BenchContext, topic: str, events: int) -> dict:
    o = ctx.options
    result = await consume_and_parse(ctx.bootstrap, topic, o.partitions, events, o.timeout_seconds, ctx.progress)
    rate = per_second(result["events"], result["seconds"])
    ctx.progress.note(f"plain consumer: {result['events']:,} events in {result['seconds']:.2f} s = {rate:,.0f}/s")
    return {"raw_events_per_s": rate, "raw_seconds": result["seconds"], "raw_timed_out": result["timed_out"]}


async def pipeline_throughput(ctx: BenchContext, topic: str, events: int) -> dict:
    """One worker over the whole backlog: from /readyz 200 until every message is accounted for."""
    o = ctx.options
    worker = ctx.worker("pipeline", topic).start()
    ready = await worker.wait_ready()
    ctx.progress.note(f"pipeline worker ready in {ready - worker.started_monotonic:.1f} s (pid {worker.pid})")
    meter = CpuMeter(worker, ctx.broker_pid)
    profile_path = ctx.bench_dir / "pipeline-profile.txt"
    profiler = start_profiler(worker.pid, profile_path) if o.profile else None
    if o.profile and profiler is None:
        ctx.progress.note("py-spy not found: no profile (pip install py-spy into the venv)")
    at_ready = accounted_events(await worker.metrics_text())
    processed, finished, scrapes = at_ready, time.monotonic(), 1
    last_progress, longest_stall = finished, 0.0
    while processed < events and finished - ready < o.timeout_seconds:
        await asyncio.sleep(next_poll_seconds(events - processed, per_second(processed - at_ready, finished - ready)))
        before = processed
        processed = accounted_events(await worker.metrics_text())
        finished = time.monotonic()
        scrapes += 1
        if processed > before:
            last_progress = finished
        longest_stall = max(longest_stall, finished - last_progress)
        ctx.progress.say(f"pipeline: {processed:,.0f}/{events:,} processed,"
                         f" {per_second(processed - at_ready, finished - ready) or 0:,.0f}/s")
    cpu = meter.shares("pipeline")
    if profiler is not None:
        stop_profiler(profiler)
    text = await worker.metrics_text()
    memory = worker.memory()
    await asyncio.sleep(SETTLE_SECONDS)
    scrape_cpu = await worker.scrape_cpu_seconds()
    worker.stop()
    elapsed = finished - ready
    counted = processed - at_ready
    timed_out = processed < events
    rate = per_second(counted, elapsed)
    ctx.progress.note(f"pipeline: {processed:,.0f}/{events:,} in {elapsed:.1f} s = {rate:,.0f}/s"
                      + (" (TIMED OUT)" if timed_out else ""))
    results = {
        "pipeline_events_per_s": rate,
        "pipeline_seconds": elapsed,
        "pipeline_timed_out": timed_out,
        "pipeline_events_processed": int(processed),
        "pipeline_events_processed_before_ready": int(at_ready),
        "pipeline_longest_stall_seconds": longest_stall,
        "pipeline_worker_startup_seconds": ready - worker.started_monotonic,
        "pipeline_duplicates": int(sample_sum(text, "callpulse_events_duplicate_total")),
        "pipeline_rejected": int(sample_sum(text, "callpulse_events_rejected_total")),
        "pipeline_tracked_contacts_at_end": int(sample_sum(text, "callpulse_tracked_contacts")),
        "cpu_seconds_per_event": ratio(cpu["pipeline_worker_cpu_seconds"], counted),
        "pipeline_broker_cpu_seconds_per_event": ratio(cpu["pipeline_broker_cpu_seconds"], counted),
        **cpu,
        "pipeline_peak_rss_bytes": memory["peak_rss_bytes"],
        "pipeline_scrapes": scrapes,
        "pipeline_profiled": profiler is not None,
        "metrics_scrape_cpu_seconds": scrape_cpu,
    }
    if profiler is not None and profile_path.exists():
        summary = summarise(profile_path.read_text())
        (ctx.bench_dir / "pipeline-profile-summary.txt").write_text(format_summary(summary) + "\n")
        results["pipeline_profile"] = {"raw": str(profile_path), **summary}
    return results


def next_poll_seconds(remaining: float, rate: float | None) -> float:
    """Every POLL_SECONDS near the end (the finish is timed to that), every SLOW_POLL_SECONDS before."""
    if not rate:
        return POLL_SECONDS
    return min(SLOW_POLL_SECONDS, max(POLL_SECONDS, remaining / rate / 2))


async def markers_visible(worker: BenchWorker, probe: str) -> int:
    """The marker queue's lifetime queued count, read where `probe` says (see --latency-probe)."""
    if probe == "metrics":
        return int(sample_sum(await worker.metrics_text(), "callpulse_contacts_queued_total", queue=MARKER_QUEUE))
    status, body = await worker.get(f"/internal/queues?queue={MARKER_QUEUE}")
    if status != 200:
        raise RuntimeError(f"GET /internal/queues answered {status}")
    return queue_total(body, "contacts_queued")


async def warm_up(ctx: BenchContext, worker: BenchWorker, topic: str, messages: list) -> None:
    """Send `messages` as a backlog and wait until the worker has dealt with all of them."""
    if not messages:
        return
    ctx.progress.note(f"latency: warm-up of {len(messages):,} events (the shift's first"
                      f" {LATENCY_WARMUP_SIMULATED_SECONDS:.0f} simulated seconds), not timed")
    await produce(ctx.bootstrap, topic, messages, ctx.progress)
    deadline = time.monotonic() + ctx.options.timeout_seconds
    while (done := accounted_events(await worker.metrics_text())) < len(messages):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm-up did not finish: {done:,.0f} of {len(messages):,} events processed")
        ctx.progress.say(f"latency: warm-up {done:,.0f}/{len(messages):,} processed")
        await asyncio.sleep(POLL_SECONDS)


async def event_to_metric_latency(ctx: BenchContext) -> dict:
    """Offer a steady load and time marker events from produce() to their count moving in the queue table.

    Markers are `contact.queued` events into their own queue; its queued counter moves
    once a marker has passed the lifecycle agent, the facts topic and the queue agent.
    GET /internal/queues?queue= (the local half of GET /queues/{queue}; this one worker
    owns every partition) reads the same table value that /metrics exports at scrape
    time, at a fraction of a scrape's cost. The k-th marker sent is matched with the
    first look that finds the counter at >= k (markers are 100 ms apart, so markers
    overtaking each other across partitions barely matter).

    The simulated shift's first LATENCY_WARMUP_SIMULATED_SECONDS (agents logging in,
    a burst of agent events) are sent and processed before the measured load, which
    is then the steady mix of contact and agent events.

    The load goes through a producer that lingers --load-linger-ms (50) as bulk
    producers do; markers go through their own producer at once (linger 0), so their
    times include no batching of the load. On the embedded broker the linger is not a
    detail: its cost per record batch grows with its in-memory log, and a load sent
    with a 5 ms linger alone took it to a full core within 60 s (README: performance).
    """
    o = ctx.options
    topic = f"bench-latency-{ctx.run_id}.contact-events"
    await create_topic(ctx.bootstrap, topic, o.partitions)
    worker = ctx.worker("latency", topic).start()
    load_count = int(o.latency_rate * o.latency_seconds)
    traffic = simulated_traffic(load_count, o.latency_rate, o.seed + 1, start_ms=now_ms() + 5_000,
                                warmup_seconds=LATENCY_WARMUP_SIMULATED_SECONDS)
    await worker.wait_ready()
    await warm_up(ctx, worker, topic, traffic.warmup)
    ctx.progress.note(f"latency worker ready (pid {worker.pid}); offering {o.latency_rate:,.0f} events/s"
                      f" for {o.latency_seconds:.0f} s, a marker every {o.marker_interval_seconds * 1000:.0f} ms,"
                      f" watched through {o.latency_probe}")
    producer = batching_producer(ctx.bootstrap, linger_ms=o.load_linger_ms)
    await producer.start()
    marker_producer = batching_producer(ctx.bootstrap, linger_ms=0)
    await marker_producer.start()
    sent_at: list[float] = []
    seen_at: list[float] = []
    probes = 0
    stopping = asyncio.Event()

    async def watch() -> None:
        nonlocal probes
        while not stopping.is_set():
            began = time.monotonic()
            visible = min(await markers_visible(worker, o.latency_probe), len(sent_at))
            answered = time.monotonic()
            seen_at.extend([answered] * (visible - len(seen_at)))
            probes += 1
            await asyncio.sleep(max(0.0, o.probe_interval_seconds - (time.monotonic() - began)))

    try:
        processed_at_start = accounted_events(await worker.metrics_text())
        meter = CpuMeter(worker, ctx.broker_pid)
        watcher = asyncio.create_task(watch())
        acks = []
        sent = 0
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < o.latency_seconds:
            due = min(load_count, int(elapsed * o.latency_rate))
            while sent < due:
                key, value = traffic.messages[sent]
                acks.append(await producer.send(topic, key=key, value=value))
                sent += 1
            while len(sent_at) < int(elapsed / o.marker_interval_seconds) + 1:
                key, value = marker_message(ctx.run_id, len(sent_at), now_ms())
                sent_at.append(time.monotonic())
                acks.append(await marker_producer.send(topic, key=key, value=value))
            ctx.progress.say(f"latency: {elapsed:.0f} s, {sent + len(sent_at):,} sent,"
                             f" markers seen {len(seen_at)}/{len(sent_at)}")
            await asyncio.sleep(PACE_SECONDS)
        load_seconds = time.monotonic() - started
        await asyncio.gather(*acks)
        offered = sent + len(sent_at)
        processed_during_load = accounted_events(await worker.metrics_text()) - processed_at_start
        cpu = meter.shares("latency")
        drain_deadline = time.monotonic() + o.timeout_seconds
        while len(seen_at) < len(sent_at) and time.monotonic() < drain_deadline:
            if watcher.done():
                watcher.result()
            ctx.progress.say(f"latency: load stopped, waiting for markers {len(seen_at)}/{len(sent_at)}")
            await asyncio.sleep(0.1)
        stopping.set()
        await watcher
        on_metrics = int(sample_sum(await worker.metrics_text(), "callpulse_contacts_queued_total",
                                    queue=MARKER_QUEUE))
    finally:
        await producer.stop()
        await marker_producer.stop()
        worker.stop()
    latencies = [seen - sent for sent, seen in zip(sent_at, seen_at)]
    tenth = max(1, len(latencies) // 10)
    offered_rate = per_second(offered, load_seconds)
    processed_rate = per_second(processed_during_load, load_seconds)
    results = {
        "latency_probe": o.latency_probe,
        "latency_warmup_events": len(traffic.warmup),
        "latency_offered_events_per_s": offered_rate,
        "latency_processed_events_per_s": processed_rate,
        "latency_kept_up": bool(processed_rate and processed_rate >= 0.95 * offered_rate),
        "latency_backlog_at_end": int(offered - processed_during_load),
        **cpu,
        "latency_load_seconds": load_seconds,
        "latency_p50_seconds": percentile(latencies, 50),
        "latency_p99_seconds": percentile(latencies, 99),
        "latency_max_seconds": max(latencies, default=None),
        "latency_p50_first_tenth_seconds": percentile(latencies[:tenth], 50),
        "latency_p50_last_tenth_seconds": percentile(latencies[-tenth:], 50),
        "markers": len(latencies),
        "markers_missing": len(sent_at) - len(latencies),
        "markers_on_metrics": on_metrics,
        "latency_probes": probes,
    }
    ctx.progress.note(f"latency: p50 {results['latency_p50_seconds'] or 0:.3f} s,"
                      f" p99 {results['latency_p99_seconds'] or 0:.3f} s over {len(latencies)} markers;"
                      f" processed {processed_rate:,.0f}/s of {offered_rate:,.0f}/s offered")
    return results


async def memory_in_flight(ctx: BenchContext) -> dict:
    """Peak RSS of a worker holding `contacts` queued contacts that never leave their queue.

    Read once both stages are through: the lifecycle agent tracks every contact and the
    queue agent counts every one waiting (it can trail the lifecycle agent by minutes).
    """
    o = ctx.options
    topic = f"bench-memory-{ctx.run_id}.contact-events"
    await create_topic(ctx.bootstrap, topic, o.partitions)
    worker = ctx.worker("memory", topic).start()
    try:
        await worker.wait_ready()
        baseline = worker.memory()
        messages = queued_contacts(o.contacts, ctx.run_id, now_ms())
        ctx.progress.note(f"memory worker ready (pid {worker.pid}, peak RSS {baseline['peak_rss_bytes']:,} B);"
                          f" sending {o.contacts:,} contacts")
        started = time.monotonic()
        await produce(ctx.bootstrap, topic, messages, ctx.progress)
        processed = tracked = waiting = 0
        while time.monotonic() - started < o.timeout_seconds:
            text = await worker.metrics_text()
            processed = sample_sum(text, "callpulse_events_total")
            tracked = sample_sum(text, "callpulse_tracked_contacts")
            waiting = sample_sum(text, "callpulse_queue_waiting_contacts")
            if processed >= o.contacts and tracked == waiting == o.contacts:
                break
            ctx.progress.say(f"memory: {processed:,.0f}/{o.contacts:,} processed, {tracked:,.0f} tracked,"
                             f" {waiting:,.0f} waiting")
            await asyncio.sleep(next_poll_seconds(o.contacts - processed,
                                                  per_second(processed, time.monotonic() - started)))
        finished = time.monotonic()
        memory = worker.memory()
    finally:
        worker.stop()
    complete = processed >= o.contacts and tracked == waiting == o.contacts
    growth = (memory["peak_rss_bytes"] or 0) - (baseline["peak_rss_bytes"] or 0)
    ctx.progress.note(f"memory: peak RSS {memory['peak_rss_bytes']:,} B with {tracked:,.0f} contacts tracked")
    return {
        "rss_bytes_100k_contacts": memory["peak_rss_bytes"] if o.contacts == 100_000 else None,
        "memory_contacts": o.contacts,
        "memory_peak_rss_bytes": memory["peak_rss_bytes"],
        "memory_rss_bytes_at_end": memory["rss_bytes"],
        "memory_baseline_peak_rss_bytes": baseline["peak_rss_bytes"],
        "memory_bytes_per_contact": growth / o.contacts,
        "memory_tracked_contacts": int(tracked),
        "memory_waiting_contacts": int(waiting),
        "memory_timed_out": not complete,
        "memory_events_per_s": per_second(processed, finished - started),
    }
