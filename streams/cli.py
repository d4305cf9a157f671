"""The `callpulse` command: broker, worker, simulate and ingest."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from pathlib import Path

import click

from streams.config import ConfigError, load_config
from streams.settings import Settings


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
    from faust.worker import Worker

    from streams.pipeline import Pipeline

    from streams.kafka import existing_partitions

    try:
        partitions = asyncio.run(existing_partitions(settings, settings.input_topic))
    except Exception as problem:
        raise click.ClickException(f"cannot reach the broker at {settings.broker}: {problem}") from None
    if partitions and partitions != settings.partitions:
        # Every internal topic must match the input topic for co-partitioning.
        click.echo(f"{settings.input_topic} has {partitions} partitions; using that", err=True)
        settings = settings.model_copy(update={"partitions": partitions})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(settings, config)
    click.echo(f"callpulse worker: broker {settings.broker}, metrics http://127.0.0.1:{settings.web_port}/metrics,"
               f" state in {settings.data_dir}", err=True)
    Worker(pipeline.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


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


if __name__ == "__main__":
    main()
