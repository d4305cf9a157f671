"""`callpulse ingest`: native platform records from a file or stdin, as v1 events on the input topic."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

import orjson

from streams.contract.dead_letter import dead_letter_record
from streams.contract.events import InvalidEvent
from streams.platforms import CONVERTERS, Converter
from streams.platforms.feed import MAX_RECORD_BYTES, convert_raw
from streams.settings import Settings

PLATFORMS = tuple(CONVERTERS)
STDIN = "-"
# The worker's dead-letter topic (streams.pipeline.DEAD_LETTER_TOPIC, checked by a test); not
# imported from there, which would load Faust into a command that does not need it.
DEAD_LETTER_TOPIC = "callpulse.dead-letter"
POLL_SECONDS = 0.2
READ_CHUNK_BYTES = 64 * 1024
READ_BATCH_BYTES = 1024 * 1024
MAX_PENDING_SENDS = 1000

NumberedLine = tuple[int, bytes]


class IngestError(Exception):
    """A fatal problem (unreadable input, unreachable broker, a failed send): the command stops with it."""


class Message(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes


# ----- reading lines -------------------------------------------------------------------------

class LineSplitter:
    """Bytes in, numbered complete lines out; a line ends at a newline, a CR before it is dropped too."""

    def __init__(self) -> None:
        self.number = 0
        self._partial = b""

    def feed(self, chunk: bytes) -> list[NumberedLine]:
        if not chunk:
            return []
        pieces = (self._partial + chunk).split(b"\n")
        self._partial = pieces.pop()
        return [self._numbered(piece) for piece in pieces]

    def flush(self) -> list[NumberedLine]:
        """The last line when it has no line end (the input ended, or was replaced)."""
        partial, self._partial = self._partial, b""
        return [self._numbered(partial)] if partial else []

    def restart(self) -> None:
        """Number from 1 again: the path now holds a new file."""
        self.number = 0
        self._partial = b""

    def _numbered(self, line: bytes) -> NumberedLine:
        self.number += 1
        return self.number, line[:-1] if line.endswith(b"\r") else line


class FileLines:
    """The lines of a file as it grows, like `tail -F`.

    `read()` never blocks: it returns complete lines written since the last call,
    [] once everything is read. `reopen_if_changed()` (follow mode, when `read()`
    found nothing) notices rotation (the path names another file, as logrotate
    leaves it) and truncation (copytruncate: the file is shorter than what was
    read). The old file's last lines come first; then the new content is read
    from its start, numbered from 1 again. A last line without its line end
    waits for it while following, since the writer may be mid-line, and is
    taken as it is when the input ends or is replaced (`finish()`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - held open across reads
        self._lines = LineSplitter()

    def read(self) -> list[NumberedLine]:
        lines: list[NumberedLine] = []
        budget = READ_BATCH_BYTES
        while budget > 0 or not lines:
            chunk = self._file.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            budget -= len(chunk)
            lines.extend(self._lines.feed(chunk))
        return lines

    def reopen_if_changed(self) -> tuple[str | None, list[NumberedLine]]:
        """(what happened: "truncated", "replaced" or None, the lines read since)."""
        if os.fstat(self._file.fileno()).st_size < self._file.tell():
            last = self._lines.flush()
            self._lines.restart()
            self._file.seek(0)
            return "truncated", last + self.read()
        replacement = self._replacement()
        if replacement is None:
            return None, []
        last = self.read() + self._lines.flush()
        self._file.close()
        self._file = replacement
        self._lines.restart()
        return "replaced", last + self.read()

    def finish(self) -> list[NumberedLine]:
        return self._lines.flush()

    def close(self) -> None:
        self._file.close()

    def _replacement(self):
        """The new file at the path, if the path no longer names the open one (and a new one exists yet)."""
        try:
            current = os.stat(self.path)
        except OSError:
            return None  # moved away and not created again yet: keep reading the old one
        opened = os.fstat(self._file.fileno())
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return None
        try:
            return open(self.path, "rb", buffering=0)  # noqa: SIM115
        except OSError:
            return None


async def follow_file(source: FileLines, follow: bool, stopping: asyncio.Event,
                      poll_seconds: float = POLL_SECONDS,
                      notice: Callable[[str], None] = lambda _: None) -> AsyncIterator[list[NumberedLine]]:
    """Batches of lines until the end (or, following, until `stopping`); [] while idle, to let the caller breathe."""
    while not stopping.is_set():
        lines = source.read()
        if not lines and follow:
            change, lines = source.reopen_if_changed()
            if change:
                notice(f"{source.path} was {change}: reading it from the start")
        if lines:
            yield lines
        elif not follow:
            break
        else:
            yield []
            await _sleep_unless(stopping, poll_seconds)
    if not follow and not stopping.is_set():
        last = source.finish()
        if last:
            yield last


async def follow_stream(stream: BinaryIO, stopping: asyncio.Event,
                        poll_seconds: float = POLL_SECONDS) -> AsyncIterator[list[NumberedLine]]:
    """Batches of lines of a pipe (stdin) until it closes or `stopping`; [] while idle.

    A daemon thread does the blocking reads, so a stop never waits for the
    writer; it reads ahead by a few chunks at most (the queue is bounded).
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=8)
    threading.Thread(target=_pump, args=(stream, loop, chunks), name="callpulse-ingest-stdin", daemon=True).start()
    lines = LineSplitter()
    while not stopping.is_set():
        try:
            chunk = await asyncio.wait_for(chunks.get(), poll_seconds)
        except TimeoutError:
            yield []
            continue
        if isinstance(chunk, BaseException):
            raise IngestError(f"cannot read stdin: {chunk}")
        if chunk is None:
            last = lines.flush()
            if last:
                yield last
            return
        batch = lines.feed(chunk)
        if batch:
            yield batch


def _pump(stream: BinaryIO, loop: asyncio.AbstractEventLoop, chunks: asyncio.Queue) -> None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        read = getattr(stream, "read1", stream.read)  # read1: what is there now, not a full chunk
    else:
        # The file descriptor, not the buffered stream: a daemon thread blocked on a buffered
        # stream's lock aborts the interpreter at exit.
        def read(size: int) -> bytes:
            return os.read(fd, size)

    def put(item: bytes | BaseException | None) -> bool:
        putting = chunks.put(item)
        try:
            asyncio.run_coroutine_threadsafe(putting, loop).result()
            return True
        except (RuntimeError, CancelledError):
            putting.close()
            return False  # the event loop is stopping or gone: the command has stopped

    try:
        while chunk := read(READ_CHUNK_BYTES):
            if not put(chunk):
                return
    except Exception as problem:
        put(problem)
        return
    put(None)


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass


# ----- converting lines ----------------------------------------------------------------------

@dataclass
class IngestStats:
    lines: int = 0
    events: int = 0
    rejected: int = 0
    empty: int = 0  # lines that carry nothing callpulse measures (blank, heartbeats, bookkeeping)

    def __str__(self) -> str:
        return (f"{self.lines} lines read, {self.events} events sent, {self.rejected} rejected,"
                f" {self.empty} without anything to measure")


@dataclass
class LineConverter:
    """One line in, the Kafka messages it becomes out: its v1 events, or its dead-letter record.

    Rejected lines are also reported (`report`) as `name:line: rejected (reason): detail`.
    The dead-letter record names the file as its source topic (`file:<absolute path>`,
    `file:-` for stdin), partition 0 and the line number as offset.
    """

    converter: Converter
    input_topic: str
    name: str
    source_topic: str
    report: Callable[[str], None]
    wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    stats: IngestStats = field(default_factory=IngestStats)

    def convert(self, number: int, line: bytes) -> list[Message]:
        self.stats.lines += 1
        if not line.strip():
            self.stats.empty += 1
            return []
        try:
            events = convert_raw(self.converter, line)
        except InvalidEvent as problem:
            self.stats.rejected += 1
            self.report(f"{self.name}:{number}: rejected ({problem.reason}): {problem.detail}")
            record = dead_letter_record(raw=line[:MAX_RECORD_BYTES], reason=problem.reason, detail=problem.detail,
                                        topic=self.source_topic, partition=0, offset=number, key=None,
                                        rejected_at_ms=self.wall_clock_ms())
            return [Message(DEAD_LETTER_TOPIC, None, orjson.dumps(record))]
        if not events:
            self.stats.empty += 1
        self.stats.events += len(events)
        return [Message(self.input_topic, event.partition_key.encode(), orjson.dumps(event.to_json()))
                for event in events]


# ----- sending -------------------------------------------------------------------------------

class Sink(Protocol):
    async def send(self, message: Message) -> None: ...

    async def settle(self) -> None:
        """Wait until everything sent so far is acknowledged."""
        ...


class KafkaSink:
    """An aiokafka producer with a bounded number of unacknowledged messages; any failed send is fatal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = None
        self._pending: list[tuple[str, asyncio.Future]] = []  # (topic, delivery)

    async def start(self, topics: tuple[str, ...]) -> None:
        """Connect, and check that `topics` exist: a broker that creates missing topics on first use
        would give the input topic its own default partition count, which the worker then adopts."""
        from aiokafka import AIOKafkaProducer

        from streams.kafka import existing_partitions, track_sent_topics

        broker = self.settings.broker
        try:
            missing = [topic for topic in topics if not await existing_partitions(self.settings, topic)]
        except Exception as problem:
            raise IngestError(f"cannot reach the broker at {broker}: {problem}") from None
        if missing:
            raise IngestError(f"topic {', '.join(missing)} does not exist on {broker}: start a callpulse worker"
                              " first (it creates its topics), or create it with the worker's partition count")
        # It sends to the input topic and, on the first reject, to the dead-letter topic.
        self._producer = track_sent_topics(AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, linger_ms=5, **self.settings.aiokafka_security()))
        try:
            await self._producer.start()
        except Exception as problem:
            self._producer = None
            raise IngestError(f"cannot reach the broker at {broker}: {problem}") from None

    async def send(self, message: Message) -> None:
        try:
            future = await self._producer.send(message.topic, key=message.key, value=message.value)
        except Exception as problem:
            raise IngestError(f"cannot send to {message.topic} on {self.settings.broker}: {problem}") from None
        self._pending.append((message.topic, future))
        if len(self._pending) >= MAX_PENDING_SENDS:
            await self.settle()

    async def settle(self) -> None:
        pending, self._pending = self._pending, []
        outcomes = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        for (topic, _), outcome in zip(pending, outcomes):
            if isinstance(outcome, BaseException):
                # aiokafka has already retried retriable errors until its request timeout
                raise IngestError(f"sending to {topic} on {self.settings.broker} failed: {outcome!r}") from None

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


# ----- the command ---------------------------------------------------------------------------

async def pump(batches: AsyncIterator[list[NumberedLine]], lines: LineConverter, sink: Sink,
               status: Callable[[], None] = lambda: None) -> None:
    """Every line's messages to the sink, in order; acknowledgements collected while idle and at the end."""
    async for batch in batches:
        for number, line in batch:
            for message in lines.convert(number, line):
                await sink.send(message)
        if not batch:
            await sink.settle()
        status()
    await sink.settle()


def open_input(path: str) -> FileLines | BinaryIO:
    """The input as FileLines, or stdin's binary stream for "-"; IngestError when it cannot be read."""
    import sys

    if path == STDIN:
        return sys.stdin.buffer
    try:
        return FileLines(Path(path))
    except OSError as problem:
        raise IngestError(f"cannot read {path}: {problem.strerror or problem}") from None


async def ingest(converter: Converter, path: str, *, follow: bool, settings: Settings, topic: str,
                 stats: IngestStats, report: Callable[[str], None], status_seconds: float = 10.0) -> bool:
    """Run `callpulse ingest` until the input ends (or Ctrl-C/SIGTERM); True when stopped by a signal.

    Counts go into `stats`, so the caller can print them even after an IngestError.
    """
    source = open_input(path)
    name = "<stdin>" if path == STDIN else path
    source_topic = "file:-" if path == STDIN else f"file:{os.path.abspath(path)}"
    lines = LineConverter(converter, topic, name, source_topic, report, stats=stats)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        stopping.set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)  # a second Ctrl-C stops at once

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    last_status = [time.monotonic()]

    def status() -> None:
        if time.monotonic() - last_status[0] >= status_seconds:
            last_status[0] = time.monotonic()
            report(f"  {stats}")

    sink = KafkaSink(settings)
    try:
        await sink.start((topic,))  # the dead-letter topic may not exist before the first reject
        report(f"ingesting {converter.platform} records from {name} into {topic} on {settings.broker}"
               + (" (following; Ctrl-C stops)" if follow else ""))
        if isinstance(source, FileLines):
            batches = follow_file(source, follow, stopping, notice=report)
        else:
            batches = follow_stream(source, stopping)
        await pump(batches, lines, sink, status)
    finally:
        await sink.stop()
        if isinstance(source, FileLines):
            source.close()
    return stopping.is_set()
