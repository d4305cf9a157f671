"""The `callpulse` command: broker, worker, simulate and ingest."""

from __future__ import annotations

import asyncio
import gc
import random
import signal
import sys
import time
from pathlib import Path

import click

from streams.config import ConfigError, load_config
from streams.ingest import PLATFORMS
from streams.settings import Settings

GC_YOUNG_THRESHOLD = 200_000


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as problem:  # pydantic's ValidationError names the variable
        raise click.ClickException(f"invalid CALLPULSE_* environment: {problem}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="callpulse")
def main() -> None:
    """callpulse: live contact-center metrics from Kafka events."""


@main.command()
@click.option("--port", default=9092, show_default=True, help="Port to listen on (127.0.0.1).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Write the broker's log here.")
def broker(port: int, log_file: Path | None) -> None:
    """Run the embedded development broker (tansu, in memory) until Ctrl-C."""
    from streams.broker import BrokerError, start_broker, stop_broker

    try:
        process = start_broker(port=port, log_path=log_file)
    except BrokerError as problem:
        raise click.ClickException(str(problem)) from None
    click.echo(f"embedded broker listening on 127.0.0.1:{port} (memory storage; Ctrl-C stops it)")
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    try:
        while process.poll() is None and not stopping:
            time.sleep(0.2)
    finally:
        stop_broker(process)
    if process.returncode not in (0, -signal.SIGTERM, None) and not stopping:
        raise click.ClickException(f"the broker exited with code {process.returncode}")


@main.command()
def worker() -> None:
    """Run a Faust worker of the callpulse app (start as many as you like)."""
    settings = _settings()
    try:
        config = load_config(settings.config)
    except ConfigError as problem:
        raise click.ClickException(str(problem)) from None
    from streams import end_offsets
    from streams.kafka import existing_partitions
    from streams.pipeline import Pipeline

    try:
        partitions = asyncio.run(existing_partitions(settings, settings.input_topic))
    except Exception as problem:
        raise click.ClickException(f"cannot reach the broker at {settings.broker}: {problem}") from None
    if partitions and partitions != settings.partitions:
        # Every internal topic must match the input topic for co-partitioning.
        click.echo(f"{settings.input_topic} has {partitions} partitions; using that", err=True)
        settings = settings.model_copy(update={"partitions": partitions})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    end_offsets.install(settings)  # exact table recovery targets (see the module)
    # Young-generation collections every 200,000 net allocations instead of 700: the worker makes
    # many short-lived objects per event, and the default spent about a tenth of its CPU in
    # the collector. At 50,000 a 300,000-event backlog still paid 53 collections (2.5 s in
    # all) and the latency step 80 to 140 ms pauses; at 200,000, one collection and none
    # (README: performance).
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)
    pipeline = Pipeline(settings, config)
    click.echo(f"callpulse worker: broker {settings.broker}, metrics http://127.0.0.1:{settings.web_port}/metrics,"
               f" state in {settings.data_dir}", err=True)
    service_worker(pipeline.app, settings.log_level).execute_from_commandline()


def service_worker(app, loglevel: str):
    """Faust's worker for `app`, without its terminal spinner.

    At log levels warn and error, Faust's spinner sets the root logger to DEBUG so
    that every log call turns the spinner. Every debug call in aiokafka and Faust
    (several per fetch and per send) then builds a log record: about a tenth of the
    worker's CPU at 2,000 events/s (README: performance). A service has no terminal to spin.
    """
    from faust.worker import Worker

    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


@main.command()
@click.option("--rate", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
              help="Average events per second over all queues.")
@click.option("--seed", type=int, default=None,
              help="Random seed: the same seed gives the same traffic [default: random, printed].")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Simulated seconds of traffic [default: 600 with --output, endless otherwise].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write NDJSON to this file ('-' for stdout) instead of producing to Kafka.")
@click.option("--realtime/--no-realtime", default=None,
              help="Pace messages by their event time [default: on for Kafka, off for --output].")
@click.option("--duplicates", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of events sent twice.")
@click.option("--reorder", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of events sent after a later event of the same contact.")
@click.option("--reorder-skew", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Largest event-time gap (seconds) of a reordered pair.")
@click.option("--malformed", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of malformed messages mixed in.")
@click.option("--drain/--no-drain", default=False, show_default=True,
              help="After --duration, let every contact in flight finish.")
@click.option("--topic", default=None, help="Input topic [default: $CALLPULSE_INPUT_TOPIC].")
def simulate(rate, seed, duration, output, realtime, duplicates, reorder, reorder_skew, malformed, drain,
             topic) -> None:
    """Generate realistic contact-center traffic as v1 events."""
    from streams.simulator import SimulationSettings, generate
    from streams.simulator.output import produce_to_kafka, write_ndjson

    settings = _settings()
    if seed is None:
        # Event ids derive from the seed: a fixed default would make a rerun into the same
        # topic all duplicates.
        seed = random.SystemRandom().randrange(1, 2**31)
    click.echo(f"seed {seed} (pass --seed {seed} to repeat this traffic)", err=True)
    to_file = output is not None
    if realtime is None:
        realtime = not to_file
    if duration is None:
        duration = 600.0 if to_file or not realtime else 10 * 365 * 86400.0
    now_ms = int(time.time() * 1000)
    start_ms = now_ms if realtime else now_ms - int(duration * 1000)
    sim = SimulationSettings(seed=seed, rate=rate, duration_seconds=duration, start_ms=start_ms,
                             duplicate_ratio=duplicates, reorder_ratio=reorder,
                             reorder_max_skew_seconds=reorder_skew, malformed_ratio=malformed, drain=drain)
    messages = generate(sim)
    if to_file:
        count = write_ndjson(messages, sys.stdout if str(output) == "-" else output)
        click.echo(f"wrote {count} messages to {output}", err=True)
        return
    topic = topic or settings.input_topic
    click.echo(f"simulating {rate:g} events/s into {topic} on {settings.broker}"
               f" ({'real time' if realtime else 'as fast as possible'}; Ctrl-C stops)", err=True)
    last_report = [time.monotonic()]

    def progress(sent: int) -> None:
        if time.monotonic() - last_report[0] >= 10:
            last_report[0] = time.monotonic()
            click.echo(f"  {sent} messages sent", err=True)

    try:
        count = asyncio.run(produce_to_kafka(messages, settings.bootstrap_servers, topic, realtime=realtime,
                                             security=settings.aiokafka_security(), progress=progress))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        return
    click.echo(f"sent {count} messages to {topic}", err=True)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, label = value.partition("=")
        if not sep or not name or not label:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
        pairs[name] = label
    return pairs


@main.command()
@click.argument("platform", type=click.Choice(PLATFORMS))
@click.argument("path", metavar="PATH|-")
@click.option("--follow", "-f", is_flag=True,
              help="Keep reading lines appended to PATH (reopened after rotation or truncation) until Ctrl-C.")
@click.option("--queue-extension", multiple=True, metavar="EXTEN=QUEUE",
              help="asterisk: a dialplan extension that runs Queue(QUEUE); a blind transfer to it is a re-queue.")
@click.option("--callback-key", multiple=True, metavar="KEY",
              help="asterisk: an EXITWITHKEY digit that means a callback request.")
@click.option("--queue-name", multiple=True, metavar="ID=NAME",
              help="connect: the queue label for a queue id or ARN [default: the queue id].")
@click.option("--topic", default=None, help="Input topic [default: $CALLPULSE_INPUT_TOPIC].")
@click.option("--status-seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="How often to print progress.")
def ingest(platform, path, follow, queue_extension, callback_key, queue_name, topic, status_seconds) -> None:
    """Convert PLATFORM records in PATH (or stdin) to v1 events on the input topic.

    asterisk: queue_log lines; connect: EventBridge contact events and agent event
    stream records, one JSON per line; twilio: TaskRouter webhooks (JSON or
    urlencoded) and Event Streams CloudEvents, one per line. Unconvertible lines
    are reported here and go to callpulse.dead-letter. Event ids derive from the
    records, so running the same file again changes nothing while the worker
    remembers the ids (README: Platform adapters).
    """
    from streams.ingest import DEAD_LETTER_TOPIC, IngestError, IngestStats
    from streams.ingest import ingest as run_ingest
    from streams.platforms.feed import ConverterOptionsError, merge_options, new_converter

    flags = {"--queue-extension": ("asterisk", {"queue_extensions": _pairs(queue_extension, "--queue-extension")}),
             "--callback-key": ("asterisk", {"callback_keys": list(callback_key)}),
             "--queue-name": ("connect", {"queue_names": _pairs(queue_name, "--queue-name")})}
    overrides: dict = {}
    for option, (owner, values) in flags.items():
        if any(values.values()):
            if owner != platform:
                raise click.UsageError(f"{option} is for {owner}, not {platform}")
            overrides.update(values)
    settings = _settings()
    try:
        converter = new_converter(platform, merge_options(settings.platform_options.get(platform), overrides))
    except ConverterOptionsError as problem:
        raise click.ClickException(f"{problem} (CALLPULSE_PLATFORM_OPTIONS and the command line)") from None
    stats = IngestStats()

    def report(text: str) -> None:
        click.echo(text, err=True)

    try:
        stopped = asyncio.run(run_ingest(converter, path, follow=follow, settings=settings,
                                         topic=topic or settings.input_topic, stats=stats, report=report,
                                         status_seconds=status_seconds))
    except IngestError as problem:
        report(f"failed after {stats}")
        raise click.ClickException(str(problem)) from None
    except KeyboardInterrupt:
        report(f"interrupted after {stats}")
        sys.exit(130)
    report(f"{'stopped' if stopped else 'done'}: {stats}"
           + (f" (rejected lines are in {DEAD_LETTER_TOPIC})" if stats.rejected else ""))


if __name__ == "__main__":
    main()
