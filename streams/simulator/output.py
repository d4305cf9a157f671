"""Where simulated messages go: an NDJSON file, or a Kafka topic (in real time or at full speed)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from aiokafka import AIOKafkaProducer

from streams.simulator.emission import SimulatedMessage

# Fast mode: how many sends may be in flight before waiting for their acknowledgements.
SEND_CHUNK_MESSAGES = 5000
# Real-time mode reports progress at most this often.
REALTIME_PROGRESS_SECONDS = 1.0


def write_ndjson(messages: Iterable[SimulatedMessage], path_or_file: str | Path | IO) -> int:
    """Write each message value as one line; return how many were written.

    Malformed values are written as they are (they never contain a newline).
    A text stream such as sys.stdout is written through its binary buffer so
    invalid UTF-8 survives unchanged.
    """
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "wb") as file:
            return _write_lines(messages, file)
    target = path_or_file
    if isinstance(target, io.TextIOBase):
        buffer = getattr(target, "buffer", None)
        if buffer is None:
            count = 0
            for message in messages:
                target.write(message.value.decode("utf-8", errors="replace") + "\n")
                count += 1
            target.flush()
            return count
        target.flush()
        target = buffer
    count = _write_lines(messages, target)
    target.flush()
    return count


def _write_lines(messages: Iterable[SimulatedMessage], file: IO[bytes]) -> int:
    count = 0
    lines: list[bytes] = []
    for message in messages:
        lines.append(message.value)
        count += 1
        if len(lines) >= 10_000:
            lines.append(b"")
            file.write(b"\n".join(lines))
            lines.clear()
    if lines:
        lines.append(b"")
        file.write(b"\n".join(lines))
    return count


async def produce_to_kafka(
    messages: Iterable[SimulatedMessage],
    bootstrap_servers: str,
    topic: str,
    realtime: bool,
    security: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send every message to `topic`; return how many were sent (and acknowledged).

    In real time each message waits until its `emit_at_ms` is due, counted
    from when the first message goes out (so start_ms should be "now").
    Otherwise messages go out as fast as the producer batches them, with at
    most SEND_CHUNK_MESSAGES unacknowledged. `security` holds extra
    AIOKafkaProducer arguments (SASL, TLS).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=5 if realtime else 50,
        max_batch_size=256 * 1024,
        **(security or {}),
    )
    await producer.start()
    sent = 0
    pending: list[asyncio.Future] = []
    first_emit_at_ms: int | None = None
    started_monotonic = reported_monotonic = 0.0

    async def settle() -> None:
        nonlocal sent
        await asyncio.gather(*pending)
        sent += len(pending)
        pending.clear()

    try:
        for message in messages:
            if realtime:
                now_monotonic = time.monotonic()
                if first_emit_at_ms is None:
                    first_emit_at_ms = message.emit_at_ms
                    started_monotonic = reported_monotonic = now_monotonic
                due_monotonic = started_monotonic + (message.emit_at_ms - first_emit_at_ms) / 1000
                if due_monotonic > now_monotonic:
                    if pending:  # idle time anyway: collect acknowledgements
                        await settle()
                        if (
                            progress is not None
                            and now_monotonic - reported_monotonic >= REALTIME_PROGRESS_SECONDS
                        ):
                            reported_monotonic = now_monotonic
                            progress(sent)
                    await asyncio.sleep(max(0.0, due_monotonic - time.monotonic()))
            pending.append(await producer.send(topic, value=message.value, key=message.key))
            if len(pending) >= SEND_CHUNK_MESSAGES:
                await settle()
                if progress is not None and not realtime:
                    progress(sent)
        if pending:
            await settle()
        if progress is not None:
            progress(sent)
    finally:
        await producer.stop()
    return sent
