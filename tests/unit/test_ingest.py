"""`callpulse ingest` without a broker: reading files, stdin and growing files, converting lines, rejects."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.contract.events import REJECT_INVALID_FIELD, REJECT_MISSING_FIELD, InvalidEvent
from streams.ingest import (
    DEAD_LETTER_TOPIC,
    FileLines,
    IngestStats,
    LineConverter,
    LineSplitter,
    Message,
    follow_file,
    follow_stream,
    pump,
)
from streams.platforms import AsteriskConverter
from streams.platforms.feed import (
    MAX_RECORD_BYTES,
    ConverterOptionsError,
    convert_raw,
    merge_options,
    new_converter,
)
from streams.settings import Settings

SAMPLE = Path(__file__).parents[1] / "data" / "platforms" / "sample_queue_log"
ENTER = b"1795334410|1795334408.101|support|NONE|ENTERQUEUE||+4915112345678|1"
CONNECT = b"1795334428|1795334408.101|support|Bob|CONNECT|18|1795334428.105|3"
COMPLETE = b"1795334610|1795334408.101|support|Bob|COMPLETECALLER|18|182|1"


class ListSink:
    """Collects what would go to Kafka."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.settled = 0

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    async def settle(self) -> None:
        self.settled += 1


def line_converter(reports: list[str] | None = None, name: str = "queue_log") -> LineConverter:
    return LineConverter(AsteriskConverter(), "contact-events", name, f"file:/var/log/{name}",
                         (reports if reports is not None else []).append, wall_clock_ms=lambda: 1795334400000)


async def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll an async-side condition with a deadline (the follow loop polls every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


# -- splitting lines ---------------------------------------------------------------------------

def test_lines_are_numbered_across_chunks_and_lose_their_line_ends() -> None:
    lines = LineSplitter()
    assert lines.feed(b"one\r\ntw") == [(1, b"one")]
    assert lines.feed(b"o\n\nthr") == [(2, b"two"), (3, b"")]
    assert lines.flush() == [(4, b"thr")]
    assert lines.flush() == []


def test_a_restart_numbers_from_one_and_drops_the_partial_line() -> None:
    lines = LineSplitter()
    lines.feed(b"a\nb")
    lines.restart()
    assert lines.feed(b"c\n") == [(1, b"c")]


# -- files -------------------------------------------------------------------------------------

def test_a_plain_file_reads_every_line_and_a_last_one_without_line_end(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(b"a\nb\nc")
    source = FileLines(path)
    assert source.read() == [(1, b"a"), (2, b"b")]
    assert source.read() == []
    assert source.finish() == [(3, b"c")]
    source.close()


def test_a_growing_file_gives_appended_lines_once_their_line_end_is_written(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(b"a\n")
    source = FileLines(path)
    assert source.read() == [(1, b"a")]
    with path.open("ab") as log:
        log.write(b"b\nc")
        log.flush()
        assert source.read() == [(2, b"b")]
        log.write(b"c\n")
    assert source.read() == [(3, b"cc")]
    assert source.reopen_if_changed() == (None, [])
    source.close()


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(b"a\nb\nc\n")
    source = FileLines(path)
    source.read()
    path.write_bytes(b"x\n")  # copytruncate, then one new line
    assert source.read() == []
    assert source.reopen_if_changed() == ("truncated", [(1, b"x")])
    source.close()


def test_a_rotated_file_is_drained_then_the_new_one_read_from_line_one(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(b"a\n")
    source = FileLines(path)
    source.read()
    path.rename(tmp_path / "queue_log.1")
    assert source.reopen_if_changed() == (None, [])  # no new file yet: keep the old one
    with (tmp_path / "queue_log.1").open("ab") as old:
        old.write(b"b\nlast without line end")  # the writer had not reopened its log yet
    path.write_bytes(b"new\n")
    assert source.reopen_if_changed() == ("replaced", [(2, b"b"), (3, b"last without line end"), (1, b"new")])
    assert source.read() == []
    source.close()


async def test_follow_mode_sends_appended_lines_survives_truncation_and_stops_on_request(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(ENTER + b"\n")
    source, sink, stopping, notices = FileLines(path), ListSink(), asyncio.Event(), []
    lines = line_converter()
    task = asyncio.create_task(pump(follow_file(source, True, stopping, poll_seconds=0.02, notice=notices.append),
                                    lines, sink))
    await wait_until(lambda: len(sink.messages) == 1)
    with path.open("ab") as log:
        log.write(CONNECT + b"\n")
    await wait_until(lambda: len(sink.messages) == 3)  # contact.answered and the agent's on_contact
    path.write_bytes(COMPLETE + b"\n")  # truncated and rewritten shorter
    await wait_until(lambda: lines.stats.lines == 3)
    stopping.set()
    await asyncio.wait_for(task, 2)
    source.close()
    assert [orjson.loads(m.value)["type"] for m in sink.messages] == [
        "contact.queued", "contact.answered", "agent.state_changed",
        "contact.ended", "contact.wrapup_ended", "agent.state_changed"]
    assert notices == [f"{path} was truncated: reading it from the start"]
    assert sink.settled >= 1  # idle polls collect acknowledgements


async def test_without_follow_the_input_ends_at_the_end_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(ENTER + b"\n\n" + CONNECT)
    source, sink, lines = FileLines(path), ListSink(), line_converter()
    await asyncio.wait_for(pump(follow_file(source, False, asyncio.Event()), lines, sink), 2)
    source.close()
    assert len(sink.messages) == 3
    assert (lines.stats.lines, lines.stats.events, lines.stats.empty) == (3, 3, 1)


# -- stdin -------------------------------------------------------------------------------------

async def test_stdin_is_read_until_it_closes_including_a_last_line_without_line_end() -> None:
    sink = ListSink()
    stdin = io.BytesIO(ENTER + b"\n" + CONNECT)
    await asyncio.wait_for(pump(follow_stream(stdin, asyncio.Event()), line_converter(), sink), 2)
    assert [orjson.loads(m.value)["type"] for m in sink.messages] == [
        "contact.queued", "contact.answered", "agent.state_changed"]


async def test_a_pipe_streams_lines_as_they_come_and_a_stop_does_not_wait_for_the_writer() -> None:
    read_end, write_end = os.pipe()
    sink, stopping = ListSink(), asyncio.Event()
    with os.fdopen(read_end, "rb") as stdin:
        task = asyncio.create_task(pump(follow_stream(stdin, stopping, poll_seconds=0.02), line_converter(), sink))
        os.write(write_end, ENTER + b"\n")
        await wait_until(lambda: len(sink.messages) == 1)
        stopping.set()  # the writer keeps the pipe open
        await asyncio.wait_for(task, 2)
        os.close(write_end)


# -- converting lines --------------------------------------------------------------------------

def test_events_are_keyed_by_the_contract_key_and_serialised_as_v1_json() -> None:
    messages = line_converter().convert(1, CONNECT)
    assert [(m.topic, m.key) for m in messages] == [("contact-events", b"1795334408.101"), ("contact-events", b"Bob")]
    assert orjson.loads(messages[0].value)["type"] == "contact.answered"


def test_a_rejected_line_is_reported_with_its_number_and_dead_lettered_with_its_place_in_the_file() -> None:
    reports: list[str] = []
    lines = line_converter(reports)
    [message] = lines.convert(19, b"this is not a queue_log line")
    assert reports == ["queue_log:19: rejected (missing_field): expected epoch|callid|queue|agent|event|data..."]
    assert message.topic == DEAD_LETTER_TOPIC and message.key is None
    record = orjson.loads(message.value)
    assert record["reason"] == REJECT_MISSING_FIELD
    assert record["source"] == {"topic": "file:/var/log/queue_log", "partition": 0, "offset": 19, "key": None}
    assert base64.b64decode(record["raw_base64"]) == b"this is not a queue_log line"
    assert record["rejected_at"] == "2026-11-22T08:00:00.000Z"
    assert lines.stats == IngestStats(lines=1, events=0, rejected=1, empty=0)


def test_the_sample_log_converts_with_exactly_its_malformed_lines_rejected() -> None:
    reports: list[str] = []
    lines = line_converter(reports)
    messages = [m for number, line in enumerate(SAMPLE.read_bytes().splitlines(), 1)
                for m in lines.convert(number, line)]
    assert [int(text.split(":")[1]) for text in reports] == [19, 34, 42, 52, 56, 57, 58]
    assert sum(m.topic == DEAD_LETTER_TOPIC for m in messages) == 7
    assert lines.stats == IngestStats(lines=62, events=84, rejected=7, empty=5)
    assert str(lines.stats) == "62 lines read, 84 events sent, 7 rejected, 5 without anything to measure"


def test_the_dead_letter_topic_is_the_workers() -> None:
    from streams.pipeline import DEAD_LETTER_TOPIC as WORKER_DEAD_LETTER_TOPIC

    assert DEAD_LETTER_TOPIC == WORKER_DEAD_LETTER_TOPIC


# -- converters for feeds ----------------------------------------------------------------------

def test_a_converter_crash_is_a_reject_not_a_stopped_feed() -> None:
    class Broken:
        platform = "broken"

        def convert(self, record):
            raise KeyError("surprise")

    with pytest.raises(InvalidEvent) as caught:
        convert_raw(Broken(), b"{}")
    assert caught.value.reason == REJECT_INVALID_FIELD
    assert "KeyError" in caught.value.detail


def test_an_oversized_record_is_rejected_unconverted() -> None:
    with pytest.raises(InvalidEvent) as caught:
        convert_raw(AsteriskConverter(), b"1|2|3|4|" + b"x" * MAX_RECORD_BYTES)
    assert caught.value.reason == REJECT_INVALID_FIELD


@pytest.mark.parametrize(("platform", "options"), [
    ("fax", {}),
    ("asterisk", {"callback_key": ["5"]}),
    ("asterisk", {"queue_extensions": "7003"}),
    ("twilio", {"max_entries": 0}),
])
def test_unusable_converter_options_are_refused_naming_them(platform: str, options: dict) -> None:
    with pytest.raises(ConverterOptionsError):
        new_converter(platform, options)
    with pytest.raises(ValueError, match="platform_options"):
        Settings(platform_options={platform: options})


def test_command_line_options_add_to_the_configured_ones() -> None:
    merged = merge_options({"queue_extensions": {"7001": "support"}, "callback_keys": ["5"]},
                           {"queue_extensions": {"7003": "billing"}, "callback_keys": ["9"]})
    assert merged == {"queue_extensions": {"7001": "support", "7003": "billing"}, "callback_keys": ["5", "9"]}
    assert new_converter("asterisk", merged).callback_keys == {"5", "9"}


# -- the command -------------------------------------------------------------------------------

def test_an_option_of_another_platform_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["ingest", "twilio", "-", "--callback-key", "5"])
    assert result.exit_code == 2
    assert "--callback-key is for asterisk, not twilio" in result.output


def test_a_malformed_pair_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["ingest", "connect", "-", "--queue-name", "no-equals-sign"])
    assert result.exit_code == 2
    assert "expected NAME=VALUE" in result.output


def test_an_unreadable_file_is_fatal_with_a_clear_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", "asterisk", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert f"cannot read {tmp_path / 'missing'}: No such file or directory" in result.output


def test_an_unreachable_broker_is_fatal_with_a_clear_message(tmp_path: Path, monkeypatch) -> None:
    from tests.harness import free_port

    monkeypatch.setenv("CALLPULSE_BROKER", f"kafka://127.0.0.1:{free_port()}")
    path = tmp_path / "queue_log"
    path.write_bytes(ENTER + b"\n")
    result = CliRunner().invoke(main, ["ingest", "asterisk", str(path)])
    assert result.exit_code == 1
    assert "cannot reach the broker at kafka://127.0.0.1:" in result.output


class FailingDeliveries:
    """An aiokafka-like producer whose deliveries to `failing_topic` fail with `error`."""

    def __init__(self, failing_topic: str, error: Exception) -> None:
        self.failing_topic = failing_topic
        self.error = error

    async def send(self, topic, key=None, value=None):
        delivery = asyncio.get_running_loop().create_future()
        if topic == self.failing_topic:
            delivery.set_exception(self.error)
        else:
            delivery.set_result(None)
        return delivery


def test_a_failed_delivery_names_the_topic_it_was_for():
    from aiokafka.errors import NotLeaderForPartitionError

    from streams.ingest import IngestError, KafkaSink

    async def run():
        sink = KafkaSink(Settings(broker="kafka://127.0.0.1:9"))
        sink._producer = FailingDeliveries(DEAD_LETTER_TOPIC, NotLeaderForPartitionError())
        await sink.send(Message("contact-events", b"k", b"v"))
        await sink.send(Message(DEAD_LETTER_TOPIC, None, b"rejected"))
        with pytest.raises(IngestError) as failure:
            await sink.settle()
        return str(failure.value)

    message = asyncio.run(run())
    assert message.startswith(f"sending to {DEAD_LETTER_TOPIC} on kafka://127.0.0.1:9 failed: ")
    assert "NotLeaderForPartitionError" in message
