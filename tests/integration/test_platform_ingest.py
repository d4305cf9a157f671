"""Platform samples through the broker and a worker, both ways in: `callpulse ingest` and the raw topic agents.

Each gives the queue counters counted by hand from tests/data/platforms/ and the
mapping rules (docs/platforms.md), dead-letters exactly the malformed lines, and
a second run of the same command changes nothing but the duplicate counter.
"""

from __future__ import annotations

import base64
import heapq
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from streams.contract.events import InvalidEvent
from streams.platforms.agents import raw_topic_name
from streams.platforms.feed import new_converter
from tests.harness import sample, wait_for

pytestmark = pytest.mark.integration

DATA = Path(__file__).parents[1] / "data" / "platforms"
DEAD_LETTER = "callpulse.dead-letter"

# The samples carry fixed dates. Keep event ids and quiet contacts however long ago that was, so that a
# re-run is recognised and nothing expires, on whatever day the suite runs (README: duplicates, stuck
# contacts): with the defaults an idle partition's watermark is the wall clock, which is hours past them.
CONFIG = """
processing:
  dedupe_retention_seconds: 315360000
  contact_expiry_seconds: 315360000
"""

COUNTERS = {
    "callpulse_contacts_queued_total": "queued",
    "callpulse_contacts_answered_total": "answered",
    "callpulse_contacts_abandoned_total": "abandoned",
    "callpulse_contacts_short_abandoned_total": "short_abandoned",
    "callpulse_contacts_callback_total": "callback",
    "callpulse_contacts_transferred_total": "transferred",
    "callpulse_holds_total": "holds",
    "callpulse_hold_abandons_total": "hold_abandons",
}

CONNECT_QUEUES = {
    "7d3c2f0e-1a2b-4c5d-8e9f-0a1b2c3d4e5f": "support",
    "2b8e4a91-3c4d-4e5f-9a0b-1c2d3e4f5a6b": "sales",
    "9c1d7e3f-5a6b-4c7d-8e9f-2a3b4c5d6e7f": "billing",
}


@dataclass(frozen=True)
class Sample:
    inputs: tuple[tuple[str, ...], ...]  # the files of each input (several files: merged by event time)
    options: dict  # converter options, as CALLPULSE_PLATFORM_OPTIONS for the raw agent
    flags: tuple[str, ...]  # the same options as `callpulse ingest` flags
    counters: dict  # (counter, queue, channel[, transfer type]) -> value, every non-zero one
    rejects: dict  # (file, line) -> reason
    repeated_ids: int  # events the converters announce twice (one id): duplicates on the first run


SAMPLES = {
    # Calls 101 (answered), 110 (abandoned after 45 s), 115 (short abandon, 2.4 s), 120 (answered in
    # sales, blind transfer to exten 7003 = billing, answered there), 140 (external transfer), 150, 160,
    # 170 (attended transfers: warm), 180 (TRANSFER to exten 1002: blind, away), 190, 205, 210
    # (EXITWITHTIMEOUT, EXITWITHKEY 0, EXITEMPTY: flow-outs, only queued), 200 (EXITWITHKEY 5: callback).
    "asterisk": Sample(
        inputs=(("sample_queue_log",),),
        options={"queue_extensions": {"7001": "support", "7002": "sales", "7003": "billing"}, "callback_keys": ["5"]},
        flags=("--queue-extension", "7001=support", "--queue-extension", "7002=sales",
               "--queue-extension", "7003=billing", "--callback-key", "5"),
        counters={
            ("queued", "support", "voice"): 6, ("queued", "sales", "voice"): 5, ("queued", "billing", "voice"): 3,
            ("answered", "support", "voice"): 3, ("answered", "sales", "voice"): 3,
            ("answered", "billing", "voice"): 2,
            ("abandoned", "support", "voice"): 1, ("short_abandoned", "sales", "voice"): 1,
            ("callback", "sales", "voice"): 1,
            ("transferred", "support", "voice", "external"): 1, ("transferred", "support", "voice", "warm"): 1,
            ("transferred", "sales", "voice", "blind"): 1, ("transferred", "sales", "voice", "warm"): 2,
            ("transferred", "billing", "voice", "blind"): 1,
        },
        rejects={("sample_queue_log", 19): "missing_field", ("sample_queue_log", 34): "missing_field",
                 ("sample_queue_log", 42): "invalid_timestamp", ("sample_queue_log", 52): "unknown_type",
                 ("sample_queue_log", 56): "missing_field", ("sample_queue_log", 57): "missing_field",
                 ("sample_queue_log", 58): "invalid_field"},
        repeated_ids=0,
    ),
    # c1 answered with a hold; c2 ended while queued after 25 s (abandon); c3 chat answered; c4a answered,
    # blind transfer to billing where c4b is answered; c5a moved by the flow sales -> support (only queued),
    # c5b answered and hung up on hold (hold abandon); c6a callback, c6b its callback, still waiting;
    # c7a answered, transferred to an agent (c7b waits in agent-queue); c8a answered, external transfer.
    # The contact and agent streams go in together, by event time, as they are written live.
    "connect": Sample(
        inputs=(("connect_contact_events.ndjson", "connect_agent_events.ndjson"),),
        options={"queue_names": CONNECT_QUEUES},
        flags=tuple(arg for queue_id, name in CONNECT_QUEUES.items() for arg in ("--queue-name", f"{queue_id}={name}")),
        counters={
            ("queued", "support", "voice"): 6, ("answered", "support", "voice"): 3,
            ("abandoned", "support", "voice"): 1, ("callback", "support", "voice"): 1,
            ("holds", "support", "voice"): 2, ("hold_abandons", "support", "voice"): 1,
            ("transferred", "support", "voice", "blind"): 1,
            ("queued", "sales", "voice"): 2, ("answered", "sales", "voice"): 1,
            ("transferred", "sales", "voice", "blind"): 1,
            ("queued", "sales", "chat"): 1, ("answered", "sales", "chat"): 1,
            ("queued", "billing", "voice"): 2, ("answered", "billing", "voice"): 2,
            ("transferred", "billing", "voice", "external"): 1,
            ("queued", "agent-queue", "voice"): 1,
        },
        rejects={**{("connect_contact_events.ndjson", n): r for n, r in
                    {46: "not_json", 47: "unknown_type", 48: "missing_field", 49: "invalid_timestamp",
                     50: "not_object"}.items()},
                 **{("connect_agent_events.ndjson", n): r for n, r in
                    {15: "missing_field", 16: "unknown_type", 17: "invalid_field", 18: "missing_field"}.items()}},
        repeated_ids=3,  # a DISCONNECTED delivered twice; a transfer and a callback announced by two records
    ),
    # Webhooks: T1 answered; T2 abandoned after 30.9 s; T3 chat answered; T4 answered, cold transfer to
    # billing (T6, answered); T5 answered, warm transfer; T7 TTL cancel (flow-out: only queued); T8
    # callback. Event Streams: E1 answered; E2 chat abandoned after 3 s (short).
    "twilio": Sample(
        inputs=(("twilio_webhooks.ndjson",), ("twilio_event_streams.ndjson",)),
        options={},
        flags=(),
        counters={
            ("queued", "support", "voice"): 5, ("answered", "support", "voice"): 3,
            ("abandoned", "support", "voice"): 1, ("transferred", "support", "voice", "blind"): 1,
            ("queued", "sales", "chat"): 2, ("answered", "sales", "chat"): 1,
            ("short_abandoned", "sales", "chat"): 1,
            ("queued", "sales", "voice"): 1, ("callback", "sales", "voice"): 1,
            ("queued", "billing", "voice"): 2, ("answered", "billing", "voice"): 2,
            ("transferred", "billing", "voice", "warm"): 1,
        },
        rejects={**{("twilio_webhooks.ndjson", n): r for n, r in
                    {55: "missing_field", 56: "unknown_type", 57: "missing_field", 58: "invalid_timestamp",
                     59: "missing_field"}.items()},
                 **{("twilio_event_streams.ndjson", n): r for n, r in
                    {11: "unknown_type", 12: "missing_field", 13: "not_object"}.items()}},
        repeated_ids=6,  # task.wrapup and task.completed both announce the task's end
    ),
}


# -- inputs ------------------------------------------------------------------------------------

def input_lines(platform: str, files: tuple[str, ...]) -> list[tuple[str, int, bytes]]:
    """(file, line number, line) of one input; several files are merged by event time, each kept in its order.

    A line's time is the earliest of its events; a line without events goes with the line before it.
    """
    streams = []
    for file in files:
        converter = new_converter(platform, SAMPLES[platform].options)
        keyed, at = [], 0
        for number, line in enumerate((DATA / file).read_bytes().splitlines(), 1):
            try:
                events = converter.convert(line)
            except InvalidEvent:
                events = []
            at = min((e.occurred_at_ms for e in events), default=at)
            keyed.append((at, file, number, line))
        streams.append(keyed)
    return [(file, number, line) for _, file, number, line in heapq.merge(*streams, key=lambda item: item[0])]


def write_input(tmp_path: Path, platform: str, files: tuple[str, ...]) -> tuple[Path, dict[int, tuple[str, int]]]:
    """The input as one file in the test's directory (its own dead-letter source), and where its lines came from."""
    lines = input_lines(platform, files)
    path = tmp_path / f"{platform}-{len(files)}-{files[0]}"
    path.write_bytes(b"".join(line + b"\n" for _, _, line in lines))
    return path, {n: (file, number) for n, (file, number, _) in enumerate(lines, 1)}


# -- checks ------------------------------------------------------------------------------------

def queue_counters(metrics: dict) -> dict:
    """Every non-zero per-queue counter as (counter, queue, channel[, transfer type]) -> value."""
    found = {}
    for (name, labels), value in metrics.items():
        if name in COUNTERS and value:
            labels = dict(labels)
            key = (COUNTERS[name], labels["queue"], labels["channel"])
            found[key + ((labels["transfer_type"],) if "transfer_type" in labels else ())] = value
    return found


def total(metrics: dict, name: str) -> float:
    return sum(value for (sample_name, _), value in metrics.items() if sample_name == name)


def wait_for_counters(worker, expected: dict, **extra: float) -> dict:
    """The worker's metrics once its per-queue counters (and `extra` totals) are exactly as expected."""
    def settled():
        metrics = worker.metrics()
        if queue_counters(metrics) == expected and all(total(metrics, n) == v for n, v in extra.items()):
            return metrics
        return None
    try:
        return wait_for(settled, 180, message="the hand-counted queue counters")
    except AssertionError:
        metrics = worker.metrics()
        assert queue_counters(metrics) == expected, worker.log_tail()
        raise


def dead_letters(stack, source_topics: set[str], count: int) -> list[dict]:
    """The dead-letter records from `source_topics` (the topic is shared by every test), once there are `count`."""
    def collected():
        records = [orjson.loads(m.value) for m in stack.consume(DEAD_LETTER, 1_000_000, timeout=2)]
        mine = [r for r in records if r["source"]["topic"] in source_topics]
        return mine if len(mine) >= count else None
    return wait_for(collected, 180, interval=0.5, message=f"{count} dead-letter records")


def run_ingest(stack, platform: str, path: Path, *flags: str) -> str:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "ingest", platform, str(path), *flags],
                            env=stack.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stderr}\n{stack.broker_log_tail()}"
    return result.stderr


def events_sent(stderr: str) -> int:
    return int(re.search(r"^done: \d+ lines read, (\d+) events sent", stderr, re.MULTILINE).group(1))


@pytest.fixture
def own_raw_topics(stack, monkeypatch) -> str:
    """Raw topics of this test only (the broker is shared); the prefix reaches workers through the environment."""
    prefix = f"{stack.app_id}.raw"
    monkeypatch.setenv("CALLPULSE_RAW_TOPIC_PREFIX", prefix)
    return prefix


# -- the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("platform", sorted(SAMPLES))
def test_ingest_command_gives_the_hand_counted_metrics_and_a_rerun_changes_nothing(
        stack, own_raw_topics, tmp_path, platform):
    spec = SAMPLES[platform]
    worker = stack.worker(config=CONFIG).start()
    inputs = [write_input(tmp_path, platform, files) for files in spec.inputs]

    sent = 0
    for path, origin in inputs:
        stderr = run_ingest(stack, platform, path, *spec.flags)
        sent += events_sent(stderr)
        reported = {int(n): reason for n, reason in re.findall(r"^\S+:(\d+): rejected \((\w+)\): ", stderr, re.M)}
        assert {origin[n]: reason for n, reason in reported.items()} == \
            {place: reason for place, reason in spec.rejects.items() if place[0] in {f for f, _ in origin.values()}}
    metrics = wait_for_counters(worker, spec.counters, callpulse_events_duplicate_total=spec.repeated_ids)
    assert total(metrics, "callpulse_events_total") + spec.repeated_ids == sent
    assert total(metrics, "callpulse_events_rejected_total") == 0  # rejected by the command, never sent

    sources = {f"file:{path}": (path, origin) for path, origin in inputs}
    records = dead_letters(stack, set(sources), len(spec.rejects))
    assert len(records) == len(spec.rejects)
    lines = {}
    for record in records:
        path, origin = sources[record["source"]["topic"]]
        assert record["source"]["partition"] == 0 and record["source"]["key"] is None
        raw = base64.b64decode(record["raw_base64"])
        assert raw == path.read_bytes().splitlines()[record["source"]["offset"] - 1]
        lines[origin[record["source"]["offset"]]] = record["reason"]
    assert lines == spec.rejects

    for path, _ in inputs:
        run_ingest(stack, platform, path, *spec.flags)
    again = wait_for_counters(worker, spec.counters, callpulse_events_duplicate_total=spec.repeated_ids + sent)
    assert total(again, "callpulse_events_total") == total(metrics, "callpulse_events_total")
    time.sleep(2)  # past the idle finalisation: still nothing new
    assert queue_counters(worker.metrics()) == spec.counters


@pytest.mark.parametrize("platform", sorted(SAMPLES))
def test_raw_topic_agent_gives_the_same_metrics_and_dead_letters_with_the_reason(
        stack, own_raw_topics, monkeypatch, platform):
    spec = SAMPLES[platform]
    monkeypatch.setenv("CALLPULSE_PLATFORM_OPTIONS", orjson.dumps({platform: spec.options}).decode())
    worker = stack.worker(config=CONFIG).start()
    raw_topic = raw_topic_name(own_raw_topics, platform)
    produced = [(file, number, line) for files in spec.inputs
                for file, number, line in input_lines(platform, files) if line.strip()]
    # One key: a connector shipping these streams keeps them in order on one partition.
    stack.produce([(f"{platform}-sample".encode(), line) for _, _, line in produced], topic=raw_topic)

    rejected_by_reason: dict[str, int] = {}
    for reason in spec.rejects.values():
        rejected_by_reason[reason] = rejected_by_reason.get(reason, 0) + 1
    metrics = wait_for_counters(worker, spec.counters, callpulse_events_duplicate_total=spec.repeated_ids,
                                callpulse_events_rejected_total=len(spec.rejects))
    for reason, count in rejected_by_reason.items():
        assert sample(metrics, "callpulse_events_rejected_total", reason=reason) == count

    records = dead_letters(stack, {raw_topic}, len(spec.rejects))
    assert len(records) == len(spec.rejects)
    found = {}
    for record in records:
        file, number, line = produced[record["source"]["offset"]]
        assert base64.b64decode(record["raw_base64"]) == line
        assert record["source"]["key"] == f"{platform}-sample"
        found[(file, number)] = record["reason"]
    assert found == spec.rejects


def test_follow_sends_lines_as_they_are_appended_and_stops_cleanly_on_a_signal(stack, own_raw_topics, tmp_path):
    spec = SAMPLES["asterisk"]
    worker = stack.worker(config=CONFIG).start()
    lines = (DATA / "sample_queue_log").read_bytes().splitlines(keepends=True)
    path = tmp_path / "queue_log"
    path.write_bytes(b"".join(lines[:16]))  # up to call 120's entry: 2 entries in support, 2 in sales
    command = [sys.executable, "-m", "streams.cli", "ingest", "asterisk", "--status-seconds", "0.5", *spec.flags]
    following = subprocess.Popen([*command, str(path), "--follow"], env=stack.env(), stderr=subprocess.PIPE, text=True)
    piped = None
    try:
        wait_for(lambda: {k: v for k, v in queue_counters(worker.metrics()).items() if k[0] == "queued"} ==
                 {("queued", "support", "voice"): 2, ("queued", "sales", "voice"): 2}, 60,
                 message="the first lines' queue entries")
        with path.open("ab") as log:
            for line in lines[16:]:
                log.write(line)
                log.flush()
        wait_for_counters(worker, spec.counters)
        assert following.poll() is None
        following.send_signal(signal.SIGTERM)
        _, following_err = following.communicate(timeout=30)

        # The same lines through a pipe its writer keeps open: all duplicates; Ctrl-C ends it cleanly.
        piped = subprocess.Popen([*command, "-"], env=stack.env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        piped.stdin.write(b"".join(lines))
        piped.stdin.flush()
        wait_for_counters(worker, spec.counters, callpulse_events_duplicate_total=82)
        piped.send_signal(signal.SIGINT)
        piped.wait(timeout=30)  # stdin still open: a reader blocked on it must not hold up the exit
        piped_err = piped.communicate()[1].decode()
    finally:
        for process in (following, piped):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert following.returncode == 0, following_err
    assert "(following; Ctrl-C stops)" in following_err
    assert "stopped: 62 lines read, 82 events sent, 7 rejected" in following_err
    assert re.search(r"^  \d+ lines read, \d+ events sent", following_err, re.MULTILINE)  # progress
    assert piped.returncode == 0, piped_err
    assert "stopped: 62 lines read, 82 events sent, 7 rejected" in piped_err
