"""The traffic simulator: determinism, valid events, coherent lifecycles, faults and outputs."""

from __future__ import annotations

import asyncio
import io
from collections import Counter, defaultdict
from itertools import pairwise
from typing import ClassVar

import orjson
import pytest

from streams.contract.events import AGENT_STATE_CHANGED, InvalidEvent, parse_event
from streams.simulator import (
    FAULT_DUPLICATE,
    FAULT_MALFORMED,
    FAULT_REORDERED,
    SimulationSettings,
    generate,
    plan_traffic,
    produce_to_kafka,
    write_ndjson,
)
from streams.simulator import output as output_module

START_MS = 1_795_852_800_000  # 2026-11-28T08:00:00Z


def run(**overrides) -> list:
    return list(generate(SimulationSettings(start_ms=START_MS, **overrides)))


@pytest.fixture(scope="module")
def default_run() -> list:
    return run()


@pytest.fixture(scope="module")
def drained_run() -> list:
    return run(drain=True)


def contact_timelines(messages) -> dict[str, list]:
    """contact_id -> parsed events of that contact in event-time order (first copies only)."""
    by_contact: dict[str, list] = defaultdict(list)
    seen: set[str] = set()
    for message in messages:
        if message.event is None or message.event["event_id"] in seen:
            continue
        seen.add(message.event["event_id"])
        event = parse_event(message.value)
        if not event.is_agent_event:
            by_contact[event.contact_id].append(event)
    for events in by_contact.values():
        events.sort(key=lambda e: e.occurred_at_ms)
    return by_contact


def agent_timelines(messages) -> dict[str, list]:
    by_agent: dict[str, list] = defaultdict(list)
    for message in messages:
        if message.event is not None and message.event["type"] == AGENT_STATE_CHANGED:
            by_agent[message.event["agent_id"]].append(parse_event(message.value))
    for events in by_agent.values():
        events.sort(key=lambda e: e.occurred_at_ms)
    return by_agent


def check_lifecycle(events, skills_of: dict[str, set[str]]) -> str:
    """Walk one contact's events through the contact state machine; return the final state."""
    state = "new"
    channel = queue = expected_queue = None
    for event in events:
        kind = event.type
        where = f"{event.contact_id}: {kind} in state {state}"
        if state == "new":
            assert kind == "contact.queued", where
            channel, queue, state = event.channel, event.queue, "queued"
        elif state == "queued":
            assert kind in (
                "contact.answered",
                "contact.abandoned",
                "contact.callback_requested",
                "contact.ended",
            ), where
            if kind == "contact.answered":
                assert queue in skills_of[event.agent_id], f"{where}: agent without skill {queue}"
                state = "connected"
            else:
                state = "left_queue"
        elif state == "connected":
            assert kind in (
                "contact.hold_started",
                "contact.transferred",
                "contact.ended",
                "chat.message",
            ), where
            if kind == "contact.hold_started":
                assert channel == "voice", where
                state = "on_hold"
            elif kind == "chat.message":
                assert channel == "chat", where
            elif kind == "contact.transferred":
                if event.transfer_type == "external":
                    assert event.to_queue is None, where
                    state = "external"
                else:
                    assert event.to_queue and event.to_queue != queue, where
                    expected_queue, state = event.to_queue, "transferring"
            else:
                state = "ended"
        elif state == "on_hold":
            assert kind in ("contact.hold_ended", "contact.ended"), where
            state = "connected" if kind == "contact.hold_ended" else "ended"
        elif state == "transferring":
            assert kind == "contact.queued" and event.queue == expected_queue, where
            assert event.channel == channel, where
            queue, state = event.queue, "queued"
        elif state == "external":
            assert kind == "contact.ended", where
            state = "ended"
        elif state == "ended":
            assert kind == "contact.wrapup_ended", where
            state = "done"
        else:
            raise AssertionError(f"{where}: nothing may follow")
    return state


def skills(messages) -> dict[str, set[str]]:
    return {
        agent_id: set(events[0].queues) for agent_id, events in agent_timelines(messages).items()
    }


# -- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes():
    settings = dict(
        seed=5, duration_seconds=120, duplicate_ratio=0.05, reorder_ratio=0.05, malformed_ratio=0.02
    )
    first, second = run(**settings), run(**settings)
    assert [(m.key, m.value, m.emit_at_ms) for m in first] == [
        (m.key, m.value, m.emit_at_ms) for m in second
    ]


def test_different_seed_gives_different_traffic():
    assert [m.value for m in run(seed=1, duration_seconds=60)] != [
        m.value for m in run(seed=2, duration_seconds=60)
    ]


def test_injecting_faults_leaves_the_traffic_itself_unchanged():
    clean = [m.value for m in run(seed=3, duration_seconds=120)]
    faulty = run(
        seed=3, duration_seconds=120, duplicate_ratio=0.1, reorder_ratio=0.1, malformed_ratio=0.05
    )
    originals = sorted(m.value for m in faulty if m.fault in (None, FAULT_REORDERED))
    assert originals == sorted(clean)


# -- the contract ----------------------------------------------------------------------------


def test_every_message_is_a_valid_v1_event_with_the_contract_key(default_run):
    event_ids = set()
    for message in default_run:
        event = parse_event(message.value)
        assert message.key == event.partition_key.encode()
        assert message.event == orjson.loads(message.value)
        assert message.occurred_at_ms == event.occurred_at_ms == message.emit_at_ms
        event_ids.add(event.event_id)
    assert len(event_ids) == len(default_run)


def test_contact_and_agent_ids_follow_the_documented_shape(default_run):
    for message in default_run:
        event = message.event
        if event["type"] == AGENT_STATE_CHANGED:
            assert event["agent_id"].startswith("a-")
        else:
            assert event["contact_id"].startswith("c-1-")


def test_occurred_at_mixes_utc_offset_and_epoch_millisecond_forms(default_run):
    forms = Counter()
    for message in default_run:
        occurred_at = message.event["occurred_at"]
        if isinstance(occurred_at, int):
            forms["int"] += 1
        else:
            forms[occurred_at[-6:] if occurred_at.endswith("+01:00") else occurred_at[-1:]] += 1
    total = sum(forms.values())
    assert set(forms) == {"int", "Z", "+01:00"}
    assert 0.15 < forms["int"] / total < 0.25


def test_messages_come_in_emission_order(default_run):
    emit_times = [m.emit_at_ms for m in default_run]
    assert emit_times == sorted(emit_times)
    assert emit_times[0] == START_MS


# -- lifecycles -----------------------------------------------------------------------------


def test_every_contact_follows_the_lifecycle(default_run):
    agent_skills = skills(default_run)
    for events in contact_timelines(default_run).values():
        times = [e.occurred_at_ms for e in events]
        assert len(set(times)) == len(times), "two events of one contact at the same millisecond"
        check_lifecycle(events, agent_skills)


AGENT_TRANSITIONS = {
    "offline": {"available"},
    "available": {"on_contact", "unavailable", "offline"},
    "on_contact": {"after_contact_work"},
    "after_contact_work": {"available", "unavailable", "offline"},
    "unavailable": {"available", "offline"},
}


def test_agents_log_in_at_start_and_change_state_coherently(default_run):
    for agent_id, events in agent_timelines(default_run).items():
        assert events[0].occurred_at_ms == START_MS, agent_id
        assert events[0].queues, agent_id
        for before, after in pairwise(events):
            assert after.state in AGENT_TRANSITIONS[before.state], (
                f"{agent_id}: {before.state} -> {after.state}"
            )
            assert after.queues == events[0].queues


def test_agent_states_match_what_the_agents_are_doing(default_run):
    """Answering puts the agent on_contact; the end of its part starts after-contact work."""
    state_at = {
        (e.agent_id, e.occurred_at_ms): e.state
        for events in agent_timelines(default_run).values()
        for e in events
    }
    for events in contact_timelines(default_run).values():
        agent_id = None
        for event in events:
            if event.type == "contact.answered":
                agent_id = event.agent_id
                assert state_at.get((agent_id, event.occurred_at_ms)) == "on_contact"
            elif agent_id and (
                event.type == "contact.ended"
                or (event.type == "contact.transferred" and event.transfer_type != "external")
            ):
                assert state_at.get((agent_id, event.occurred_at_ms)) == "after_contact_work"
                agent_id = None


def test_a_default_run_shows_every_behaviour(default_run):
    seen = Counter()
    for events in contact_timelines(default_run).values():
        enqueued_ms = None
        state = None
        for event in events:
            kind = event.type
            if kind == "contact.queued":
                seen[
                    "requeues" if enqueued_ms is not None and state == "transferred" else "queued"
                ] += 1
                enqueued_ms, state = event.occurred_at_ms, "queued"
            elif state == "queued" and kind in ("contact.abandoned", "contact.ended"):
                seen["abandons"] += 1
                seen["abandoned_by_ended" if kind == "contact.ended" else "abandoned_event"] += 1
                if event.occurred_at_ms - enqueued_ms < 5000:
                    seen["short_abandons"] += 1
            elif kind == "contact.callback_requested":
                seen["callbacks"] += 1
            elif kind == "contact.answered":
                state = "connected"
            elif kind == "contact.hold_started":
                seen["holds"] += 1
                state = "on_hold"
            elif kind == "contact.hold_ended":
                state = "connected"
            elif kind == "contact.ended" and state == "on_hold":
                seen["hold_abandons"] += 1
            elif kind == "contact.transferred":
                seen[f"transfer_{event.transfer_type}"] += 1
                state = "transferred"
            elif kind == "chat.message":
                seen[f"chat_from_{event.sender}"] += 1
    states = Counter(
        m.event["state"] for m in default_run if m.event["type"] == AGENT_STATE_CHANGED
    )
    for behaviour in (
        "abandons",
        "abandoned_by_ended",
        "abandoned_event",
        "short_abandons",
        "callbacks",
        "holds",
        "hold_abandons",
        "transfer_blind",
        "transfer_warm",
        "transfer_external",
        "requeues",
        "chat_from_customer",
        "chat_from_agent",
    ):
        assert seen[behaviour] > 0, behaviour
    assert states["unavailable"] > 0 and states["offline"] > 0
    queued = [m.event for m in default_run if m.event["type"] == "contact.queued"]
    assert {e["queue"] for e in queued} == {"sales", "support", "billing", "tech", "vip"}
    assert {(e["queue"], e["channel"]) for e in queued} >= {("support", "chat"), ("tech", "chat")}


def test_queues_breach_their_service_level_now_and_then(default_run):
    """Some queue-minutes fall under 80 % answered in 20 s, most do not: the wall screen moves."""
    outcomes = defaultdict(Counter)
    for events in contact_timelines(default_run).values():
        enqueued = None
        for event in events:
            if event.type == "contact.queued":
                enqueued = event
            elif enqueued is not None and event.type in (
                "contact.answered",
                "contact.abandoned",
                "contact.ended",
            ):
                wait_ms = event.occurred_at_ms - enqueued.occurred_at_ms
                bucket = outcomes[(enqueued.queue, (event.occurred_at_ms - START_MS) // 60_000)]
                if event.type == "contact.answered":
                    bucket["met" if wait_ms <= 20_000 else "missed"] += 1
                elif wait_ms >= 5000:
                    bucket["missed"] += 1
                enqueued = None
    levels = [
        c["met"] / (c["met"] + c["missed"])
        for c in outcomes.values()
        if c["met"] + c["missed"] >= 5
    ]
    breaches = sum(level < 0.8 for level in levels)
    assert 0 < breaches < len(levels) / 2


# -- rate and plan --------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "duration_seconds"), [(20.0, 600), (60.0, 300), (5.0, 900)])
def test_observed_event_rate_is_near_the_requested_rate(rate, duration_seconds):
    messages = run(rate=rate, duration_seconds=duration_seconds, seed=11)
    observed = len(messages) / duration_seconds
    assert rate * 0.75 <= observed <= rate * 1.25


def test_staffing_and_arrivals_scale_with_rate():
    small = plan_traffic(SimulationSettings(start_ms=START_MS, rate=20))
    large = plan_traffic(SimulationSettings(start_ms=START_MS, rate=200))
    assert large.arrivals_per_second == pytest.approx(10 * small.arrivals_per_second, rel=0.01)
    assert large.agents == pytest.approx(10 * small.agents, rel=0.05)
    shares = {q.name: q.arrivals_per_second / small.arrivals_per_second for q in small.queues}
    assert shares["support"] > shares["vip"]


# -- drain ------------------------------------------------------------------------------------


def test_drain_lets_every_contact_finish(drained_run):
    agent_skills = skills(drained_run)
    timelines = contact_timelines(drained_run)
    finals = Counter()
    for contact_id, events in timelines.items():
        final = check_lifecycle(events, agent_skills)
        assert final in ("done", "left_queue"), f"{contact_id} ends in {final}"
        last_leg = events[max(i for i, e in enumerate(events) if e.type == "contact.queued") :]
        if any(e.type == "contact.answered" for e in last_leg):
            assert last_leg[-1].type == "contact.wrapup_ended", contact_id
        finals[final] += 1
    assert finals["done"] > finals["left_queue"] > 0
    end_ms = START_MS + 600_000
    callbacks = [
        e[0]
        for e in timelines.values()
        if e[0].type == "contact.queued" and e[0].occurred_at_ms > end_ms
    ]
    assert callbacks, "scheduled callbacks come back after arrivals stopped"


def test_scheduled_callbacks_return_as_new_contacts(drained_run):
    requested = {
        m.event["contact_id"]
        for m in drained_run
        if m.event["type"] == "contact.callback_requested"
    }
    returned = [
        m.event
        for m in drained_run
        if m.event["type"] == "contact.queued" and "previous_contact_id" in m.event
    ]
    assert requested and {e["previous_contact_id"] for e in returned} == requested
    assert all(e["channel"] == "voice" for e in returned)


# -- faults ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faulty_run() -> list:
    return run(
        seed=7,
        duplicate_ratio=0.05,
        reorder_ratio=0.05,
        malformed_ratio=0.02,
        reorder_max_skew_seconds=5,
    )


def test_fault_ratios_are_roughly_as_requested(faulty_run):
    faults = Counter(m.fault for m in faulty_run)
    originals = faults[None] + faults[FAULT_REORDERED]
    contact_events = sum(
        1
        for m in faulty_run
        if m.fault in (None, FAULT_REORDERED) and m.event["type"] != AGENT_STATE_CHANGED
    )
    assert faults[FAULT_DUPLICATE] / originals == pytest.approx(0.05, rel=0.2)
    assert faults[FAULT_MALFORMED] / originals == pytest.approx(0.02, rel=0.25)
    assert faults[FAULT_REORDERED] / contact_events == pytest.approx(0.05, rel=0.2)


def test_duplicates_repeat_the_same_bytes_a_little_later(faulty_run):
    first_seen = {}
    for message in faulty_run:
        if message.fault in (None, FAULT_REORDERED):
            first_seen.setdefault(message.event["event_id"], message)
    for message in faulty_run:
        if message.fault == FAULT_DUPLICATE:
            original = first_seen[message.event["event_id"]]
            assert (message.key, message.value) == (original.key, original.value)
            assert 0 < message.emit_at_ms - original.occurred_at_ms <= 2000


@pytest.mark.parametrize("skew_seconds", [5.0, 1.0])
def test_reordering_stays_within_the_skew(skew_seconds):
    messages = run(
        seed=9, duration_seconds=300, reorder_ratio=0.1, reorder_max_skew_seconds=skew_seconds
    )
    latest_by_contact: dict[bytes, int] = {}
    out_of_order = 0
    for message in messages:
        if message.event["type"] == AGENT_STATE_CHANGED:
            continue
        latest = latest_by_contact.get(message.key, 0)
        if message.occurred_at_ms < latest:
            out_of_order += 1
            assert latest - message.occurred_at_ms <= skew_seconds * 1000
            assert message.fault == FAULT_REORDERED
        latest_by_contact[message.key] = max(latest, message.occurred_at_ms)
        assert message.emit_at_ms >= message.occurred_at_ms  # nothing is sent before it happens
    assert out_of_order > 0


def test_malformed_messages_break_the_contract_in_varied_ways(faulty_run):
    reasons = Counter()
    malformed = [m for m in faulty_run if m.fault == FAULT_MALFORMED]
    for message in malformed:
        assert message.event is None and b"\n" not in message.value
        with pytest.raises(InvalidEvent) as caught:
            parse_event(message.value)
        reasons[caught.value.reason] += 1
    assert set(reasons) == {
        "not_json",
        "not_object",
        "unknown_type",
        "missing_field",
        "invalid_field",
        "invalid_timestamp",
    }
    contact_keys = {m.key for m in faulty_run if m.event and m.event["type"] != AGENT_STATE_CHANGED}
    assert sum(m.key in contact_keys for m in malformed) > len(malformed) / 2


def test_faulty_stream_stays_in_emission_order(faulty_run):
    emit_times = [m.emit_at_ms for m in faulty_run]
    assert emit_times == sorted(emit_times)


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        dict(rate=0),
        dict(duration_seconds=-1),
        dict(duplicate_ratio=1.5),
        dict(reorder_ratio=-0.1),
        dict(start_ms=0),
        dict(queues=()),
    ],
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SimulationSettings(**{"start_ms": START_MS, **bad})


# -- outputs ----------------------------------------------------------------------------------


def test_write_ndjson_writes_one_line_per_message(tmp_path):
    messages = run(seed=4, duration_seconds=60, malformed_ratio=0.05)
    path = tmp_path / "events.ndjson"
    assert write_ndjson(messages, path) == len(messages)
    assert path.read_bytes().split(b"\n") == [m.value for m in messages] + [b""]
    buffer = io.BytesIO()
    assert write_ndjson(messages, buffer) == len(messages)
    assert buffer.getvalue() == path.read_bytes()


class FakeClock:
    """Stands in for time.monotonic and asyncio.sleep: sleeping only advances the clock."""

    def __init__(self) -> None:
        self.now_seconds = 1000.0

    def monotonic(self) -> float:
        return self.now_seconds

    async def sleep(self, seconds: float) -> None:
        self.now_seconds += max(0.0, seconds)


class FakeProducer:
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.sent: list[tuple[bytes | None, bytes, float]] = []
        self.clock: FakeClock | None = None
        self.stopped = False
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        pass

    async def send(self, topic, value, key):
        self.sent.append((key, value, self.clock.now_seconds if self.clock else 0.0))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_kafka(monkeypatch):
    clock = FakeClock()
    FakeProducer.instances.clear()

    def producer(**kwargs):
        instance = FakeProducer(**kwargs)
        instance.clock = clock
        return instance

    monkeypatch.setattr(output_module, "AIOKafkaProducer", producer)
    monkeypatch.setattr(output_module.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(output_module.asyncio, "sleep", clock.sleep)
    return clock


async def test_produce_as_fast_as_possible_sends_everything_in_order(fake_kafka):
    messages = run(seed=2, duration_seconds=60, duplicate_ratio=0.05)
    reported = []
    sent = await produce_to_kafka(
        messages,
        "broker:9092",
        "callpulse.contact-events",
        realtime=False,
        security={"security_protocol": "SASL_SSL"},
        progress=reported.append,
    )
    producer = FakeProducer.instances[0]
    assert sent == len(messages) == reported[-1]
    assert [(key, value) for key, value, _ in producer.sent] == [(m.key, m.value) for m in messages]
    assert producer.kwargs["security_protocol"] == "SASL_SSL" and producer.stopped
    assert fake_kafka.now_seconds == 1000.0  # never slept


async def test_produce_in_real_time_paces_messages_by_emit_time(fake_kafka):
    messages = run(seed=2, duration_seconds=30)
    sent = await produce_to_kafka(messages, "broker:9092", "topic", realtime=True)
    producer = FakeProducer.instances[0]
    assert sent == len(messages)
    first_ms = messages[0].emit_at_ms
    for message, (_, _, sent_at_seconds) in zip(messages, producer.sent, strict=True):
        assert sent_at_seconds == pytest.approx(
            1000.0 + (message.emit_at_ms - first_ms) / 1000, abs=1e-6
        )
