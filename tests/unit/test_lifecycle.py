"""Per-contact lifecycle: from a contact's events to queue numbers and outcome records.

Time is injected: every event carries an explicit event time and the sweeps run
at explicit watermarks, as the pipeline's ticks would. No Kafka, no clock.
"""

from __future__ import annotations

import copy
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import CallpulseConfig, parse_config
from streams.contract import events as et
from streams.contract.events import Event
from streams.lifecycle import contact as lc
from streams.lifecycle import facts as f
from streams.metrics.catalogue import wait_buckets
from streams.queues import state as qs
from streams.queues.windows import window_values, window_vector

# 2026-11-22T08:00:00Z, a whole number of 10 s buckets.
T0_MS = 1_795_334_400_000
LIMITS = lc.Limits()
SKEW_S = LIMITS.skew_ms / 1000
TICK_POSITION_STRIDE = 10_000

_DEFAULT_FIELDS = {
    et.CONTACT_QUEUED: {"queue": "support", "channel": "voice"},
    et.CONTACT_ANSWERED: {"agent_id": "a-1"},
    et.CONTACT_TRANSFERRED: {"transfer_type": "blind"},
    et.CHAT_MESSAGE: {"sender": "agent"},
}


def ms(t_seconds: float) -> int:
    """Event time of `t_seconds` after T0, in epoch milliseconds."""
    return T0_MS + round(t_seconds * 1000)


def ev(event_type: str, t_seconds: float, contact_id: str = "c-1", event_id: str | None = None,
       **fields) -> Event:
    """One contact event at T0 + t_seconds; the event id follows from the content unless given."""
    values = _DEFAULT_FIELDS.get(event_type, {}) | fields
    if event_id is None:
        extra = ",".join(f"{k}={v}" for k, v in sorted(values.items()))
        event_id = f"{contact_id}/{event_type}/{t_seconds}/{extra}"
    return Event(event_id=event_id, type=event_type, occurred_at_ms=ms(t_seconds),
                 contact_id=contact_id, **values)


def queued(t, queue="support", channel="voice", **kw):
    return ev(et.CONTACT_QUEUED, t, queue=queue, channel=channel, **kw)


def answered(t, agent_id="a-1", **kw):
    return ev(et.CONTACT_ANSWERED, t, agent_id=agent_id, **kw)


def abandoned(t, **kw):
    return ev(et.CONTACT_ABANDONED, t, **kw)


def callback(t, **kw):
    return ev(et.CONTACT_CALLBACK_REQUESTED, t, **kw)


def hold_started(t, **kw):
    return ev(et.CONTACT_HOLD_STARTED, t, **kw)


def hold_ended(t, **kw):
    return ev(et.CONTACT_HOLD_ENDED, t, **kw)


def transferred(t, transfer_type="blind", **kw):
    return ev(et.CONTACT_TRANSFERRED, t, transfer_type=transfer_type, **kw)


def ended(t, disconnected_by=None, **kw):
    return ev(et.CONTACT_ENDED, t, disconnected_by=disconnected_by, **kw)


def wrapup_ended(t, **kw):
    return ev(et.CONTACT_WRAPUP_ENDED, t, **kw)


def chat(t, sender="agent", **kw):
    return ev(et.CHAT_MESSAGE, t, sender=sender, **kw)


def clock(t_seconds: float) -> Event:
    """An event of another contact in another queue that moves the partition's stream time."""
    return queued(t_seconds, queue="other", contact_id=f"clock-{t_seconds}")


class Flow:
    """Events through apply_event, watermark sweeps through finalize, facts into queue states.

    Mirrors the pipeline without Kafka: input facts are stamped
    src=[0, partition, offset, i], tick facts src=[1, partition, tick, position*10000+i];
    a sweep finalises the contacts whose due_ms the watermark has reached.
    """

    def __init__(self, config: CallpulseConfig | None = None, limits: lc.Limits = LIMITS,
                 partition: int = 0) -> None:
        self.config = config or CallpulseConfig()
        self.limits = limits
        self.partition = partition
        self.wait_edges = wait_buckets(self.config.service_level_thresholds()
                                       | self.config.short_abandon_thresholds())
        self.contacts: dict[str, dict] = {}
        self.queues: dict[str, dict] = {}
        self.records: list[dict] = []
        self.stream_time_ms = 0
        self.next_offset = 0
        self.next_tick = 0

    def short_abandon_seconds(self, queue: str) -> float:
        return self.config.targets_for(queue).short_abandon_seconds

    def send(self, event: Event, offset: int | None = None, sweep: bool = True) -> lc.Outcome:
        """One input message, then (by default) a sweep at stream time minus the skew."""
        if offset is None:
            offset = self.next_offset
        self.next_offset = max(self.next_offset, offset + 1)
        contact_id = event.contact_id
        outcome = lc.apply_event(self.contacts.get(contact_id), contact_id, event, offset,
                                 self.partition, self.stream_time_ms, self.limits,
                                 self.short_abandon_seconds)
        if not (outcome.duplicate or outcome.replay):
            self.contacts[contact_id] = outcome.state
            self._apply(outcome.facts, [f.SRC_INPUT, self.partition, offset], 0)
            self.records.extend(outcome.records)
        self.stream_time_ms = max(self.stream_time_ms, event.occurred_at_ms)
        if sweep:
            self.sweep()
        return outcome

    def run(self, events, sweep: bool = True) -> Flow:
        for event in events:
            self.send(event, sweep=sweep)
        return self

    def sweep(self, watermark_ms: int | None = None) -> list[lc.Outcome]:
        """One tick: finalise every contact due at the watermark (default: stream time - skew)."""
        if watermark_ms is None:
            watermark_ms = self.stream_time_ms - self.limits.skew_ms
        due = [cid for cid, state in self.contacts.items()
               if lc.due_ms(state, self.limits) <= watermark_ms]
        if not due:
            return []
        tick = self.next_tick
        self.next_tick += 1
        outcomes = []
        for position, contact_id in enumerate(due):
            outcome = lc.finalize(self.contacts[contact_id], contact_id, watermark_ms, self.limits,
                                  self.short_abandon_seconds)
            self._apply(outcome.facts, [f.SRC_TICK, self.partition, tick],
                        position * TICK_POSITION_STRIDE)
            self.records.extend(outcome.records)
            if outcome.state is None:
                del self.contacts[contact_id]
            else:
                self.contacts[contact_id] = outcome.state
            outcomes.append(outcome)
        return outcomes

    def finish(self, after_seconds: float = 3600) -> Flow:
        """Sweep once past every pending outcome (the default stays below expiry and retention)."""
        self.sweep(self.stream_time_ms + round(after_seconds * 1000))
        return self

    def _apply(self, facts: list[dict], src: list[int], base_index: int) -> None:
        for i, item in enumerate(facts):
            item = dict(item, src=src + [base_index + i])
            key = f.queue_key(item["q"], item["c"])
            state = self.queues.setdefault(key, qs.new_queue_state())
            qs.apply_fact(state, item, self.config.targets_for(item["q"]), self.config.zone,
                          self.wait_edges)

    # ----- reading the results --------------------------------------------------------------

    def queue(self, queue: str = "support", channel: str = "voice") -> dict:
        return self.queues.get(f.queue_key(queue, channel)) or qs.new_queue_state()

    def totals(self, queue: str = "support", channel: str = "voice") -> dict:
        return self.queue(queue, channel)["n"]

    def window(self, window: str = "1h", queue: str = "support", channel: str = "voice",
               now_ms: int | None = None) -> dict:
        now_ms = self.stream_time_ms if now_ms is None else now_ms
        vector = window_vector(self.queue(queue, channel), window, now_ms, self.config.zone)
        return window_values(vector)

    def gauges(self, queue: str = "support", channel: str = "voice") -> dict:
        state = self.queue(queue, channel)
        return {"waiting": sum(state["wait"].values()), "on_hold": state["hold"],
                "active": state["active"]}

    def histogram(self, name: str, queue: str = "support", channel: str = "voice") -> dict:
        return self.queue(queue, channel)["h"][name]

    def records_of(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["record"] == kind]


def in_order(events) -> list[Event]:
    return sorted(events, key=lambda e: e.occurred_at_ms)


def flow(*events, config: CallpulseConfig | None = None, limits: lc.Limits = LIMITS) -> Flow:
    """Deliver `events` in event-time order (stable for ties), then finalise past all of them."""
    return Flow(config, limits).run(in_order(events)).finish()


def config(**yaml_like) -> CallpulseConfig:
    return parse_config(yaml_like)


def answered_call(wait_s: float, contact_id: str = "c-1", queue: str = "support",
                  start: float = 0) -> list[Event]:
    """A voice contact answered after `wait_s` that ends and finishes wrap-up."""
    return [
        queued(start, queue=queue, contact_id=contact_id),
        answered(start + wait_s, contact_id=contact_id),
        ended(start + wait_s + 60, contact_id=contact_id),
        wrapup_ended(start + wait_s + 90, contact_id=contact_id),
    ]


def abandoned_call(wait_s: float, contact_id: str = "c-1", queue: str = "support",
                   start: float = 0) -> list[Event]:
    return [queued(start, queue=queue, contact_id=contact_id),
            abandoned(start + wait_s, contact_id=contact_id)]


def queue_numbers(fl: Flow) -> dict:
    """Every queue's state except the replay marks (which depend on offsets, not on the events)."""
    return {key: {k: v for k, v in state.items() if k != "hwm"} for key, state in fl.queues.items()}


def sorted_records(fl: Flow) -> list[dict]:
    return sorted(fl.records,
                  key=lambda r: (r["t"], r["record"], str(r["outcome"]), r["contact_id"]))


# ----- answered, wait, service level ------------------------------------------------------------


def test_answered_wait_is_answer_time_minus_queue_entry():
    fl = flow(queued(0), answered(12, agent_id="a-7"))

    assert fl.totals()["answered"] == 1
    assert fl.window()["answer_wait_seconds"] == 12.0
    assert fl.histogram("wait_answered")["s"] == 12.0
    [left] = fl.records_of("left_queue")
    assert left["outcome"] == f.ANSWERED
    assert left["enqueued_at_ms"] == ms(0)
    assert left["left_queue_at_ms"] == ms(12)
    assert left["wait_ms"] == 12_000
    assert left["agent_id"] == "a-7"


def test_wait_is_measured_from_the_latest_queue_entry():
    fl = flow(queued(0, queue="support"), queued(30, queue="billing"), answered(45))

    assert fl.totals("billing")["answered"] == 1
    assert fl.window(queue="billing")["answer_wait_seconds"] == 15.0
    assert fl.totals("support")["answered"] == 0
    assert [(r["queue"], r["outcome"], r["wait_ms"]) for r in fl.records_of("left_queue")] == [
        ("support", f.QUEUE_TRANSFERRED, 30_000), ("billing", f.ANSWERED, 15_000)]


@pytest.mark.parametrize(("wait_s", "within"), [
    (0, True), (19.999, True), (20, True), (20.001, False), (45, False),
], ids=["immediate", "just_below", "exactly_at_threshold", "just_above", "well_above"])
def test_service_level_counts_answers_with_wait_at_or_below_the_20s_default(wait_s, within):
    fl = flow(queued(0), answered(wait_s))

    assert fl.window()["service_level_ratio"] == (1.0 if within else 0.0)
    assert fl.window("today")["service_level_ratio"] == (1.0 if within else 0.0)


def test_service_level_threshold_comes_from_the_queue_override():
    cfg = config(queues={"support": {"service_level_threshold_seconds": 30}})
    fl = flow(*answered_call(25, "c-1", "support"), *answered_call(25, "c-2", "sales"), config=cfg)

    assert fl.window(queue="support")["service_level_ratio"] == 1.0
    assert fl.window(queue="sales")["service_level_ratio"] == 0.0


def test_answer_wait_exactly_at_the_threshold_lands_in_the_threshold_bucket():
    cfg = config(queues={"support": {"service_level_threshold_seconds": 25}})
    fl = flow(queued(0), answered(25), config=cfg)

    assert "25.0" in {repr(e) for e in fl.wait_edges}
    assert fl.histogram("wait_answered")["b"] == {"25.0": 1}


def test_answered_contact_counts_in_windows_at_answer_time_not_queue_time():
    fl = flow(queued(0), answered(400))
    now = ms(400)

    assert fl.window("5m", now_ms=now)["contacts_answered"] == 1
    assert fl.window("5m", now_ms=now)["contacts_queued"] == 0
    assert fl.window("15m", now_ms=now)["contacts_queued"] == 1


# ----- abandons ---------------------------------------------------------------------------------


@pytest.mark.parametrize("leave", [
    pytest.param(lambda t: abandoned(t), id="contact.abandoned"),
    pytest.param(lambda t: ended(t), id="contact.ended"),
    pytest.param(lambda t: ended(t, disconnected_by="customer"), id="contact.ended_by_customer"),
    pytest.param(lambda t: ended(t, disconnected_by="agent"), id="contact.ended_by_agent"),
    pytest.param(lambda t: ended(t, disconnected_by="system"), id="contact.ended_by_system"),
])
def test_contact_leaving_while_queued_counts_as_abandon(leave):
    fl = flow(queued(0), leave(40))

    assert fl.totals()["abandoned"] == 1
    assert fl.totals()["answered"] == 0
    assert fl.window()["contacts_abandoned"] == 1
    assert fl.histogram("wait_abandoned")["s"] == 40.0
    assert [r["outcome"] for r in fl.records] == [f.ABANDONED, f.ABANDONED]
    assert fl.records_of("ended")[0]["wait_ms"] == 40_000
    assert fl.gauges() == {"waiting": 0, "on_hold": 0, "active": 0}


@pytest.mark.parametrize("leave_type", [et.CONTACT_ABANDONED, et.CONTACT_ENDED])
@pytest.mark.parametrize(("wait_s", "short"), [
    (0, True), (4.999, True), (5, False), (5.001, False), (60, False),
], ids=["zero", "just_below", "exactly_at_threshold", "just_above", "long"])
def test_short_abandon_is_a_wait_strictly_below_short_abandon_seconds(leave_type, wait_s, short):
    fl = flow(queued(0), ev(leave_type, wait_s))

    totals = fl.totals()
    assert (totals["short_abandoned"], totals["abandoned"]) == ((1, 0) if short else (0, 1))
    window = fl.window()
    counts = (window["contacts_short_abandoned"], window["contacts_abandoned"])
    assert counts == ((1, 0) if short else (0, 1))
    outcome = fl.records_of("left_queue")[0]["outcome"]
    assert outcome == (f.SHORT_ABANDONED if short else f.ABANDONED)


def test_short_abandon_threshold_comes_from_the_queue_override():
    cfg = config(queues={"support": {"short_abandon_seconds": 10}})
    fl = flow(*abandoned_call(8, "c-1", "support"), *abandoned_call(8, "c-2", "sales"), config=cfg)

    assert (fl.totals("support")["short_abandoned"], fl.totals("support")["abandoned"]) == (1, 0)
    assert (fl.totals("sales")["short_abandoned"], fl.totals("sales")["abandoned"]) == (0, 1)
    outcomes = {r["queue"]: r["outcome"] for r in fl.records_of("left_queue")}
    assert outcomes == {"support": f.SHORT_ABANDONED, "sales": f.ABANDONED}


def test_short_abandons_are_left_out_of_abandon_ratio_and_service_level():
    fl = flow(
        *answered_call(10, "a1"), *answered_call(30, "a2"),
        *abandoned_call(40, "ab1"),
        *abandoned_call(1, "s1"), *abandoned_call(2, "s2"), *abandoned_call(4.9, "s3"),
    )

    window = fl.window()
    assert window["contacts_short_abandoned"] == 3
    assert window["abandon_ratio"] == pytest.approx(1 / 3)
    assert window["service_level_ratio"] == pytest.approx(1 / 3)


def test_abandon_ratio_is_abandoned_over_answered_plus_abandoned():
    fl = flow(*answered_call(5, "a1"), *answered_call(6, "a2"), *answered_call(7, "a3"),
              *abandoned_call(30, "ab"))

    assert fl.window()["abandon_ratio"] == 0.25
    assert fl.window()["service_level_ratio"] == 0.75


def test_ratios_are_undefined_when_only_short_abandons_happened():
    fl = flow(*abandoned_call(1, "s1"), *abandoned_call(2, "s2"))

    window = fl.window()
    assert window["contacts_short_abandoned"] == 2
    assert window["abandon_ratio"] is None
    assert window["service_level_ratio"] is None
    assert window["answer_wait_seconds"] is None


# ----- callbacks --------------------------------------------------------------------------------


def test_callback_request_is_counted_as_callback_not_abandon():
    fl = flow(queued(0), callback(45), ended(46))

    totals = fl.totals()
    assert totals["callback"] == 1
    assert (totals["abandoned"], totals["short_abandoned"]) == (0, 0)
    assert fl.window()["abandon_ratio"] is None
    assert fl.window()["service_level_ratio"] is None
    assert [r["outcome"] for r in fl.records] == [f.CALLBACK, f.CALLBACK]
    assert fl.gauges()["waiting"] == 0


# ----- holds ------------------------------------------------------------------------------------


def test_holds_are_counted_with_their_duration():
    fl = flow(queued(0), answered(10), hold_started(20), hold_ended(50), hold_started(60),
              hold_ended(70), ended(80), wrapup_ended(90))

    assert fl.totals()["holds"] == 2
    assert fl.window()["holds"] == 2
    assert fl.window()["average_hold_seconds"] == 20.0
    assert fl.histogram("hold")["s"] == 40.0
    assert fl.totals()["hold_abandons"] == 0
    [end] = fl.records_of("ended")
    assert (end["holds"], end["hold_seconds"]) == (2, 40.0)


def test_transfer_ends_a_running_hold():
    fl = flow(queued(0), answered(10), hold_started(20), transferred(50, transfer_type="external"),
              ended(55), wrapup_ended(60))

    assert fl.totals()["holds"] == 1
    assert fl.histogram("hold")["s"] == 30.0
    assert fl.totals()["tr"]["external"] == 1
    assert fl.totals()["hold_abandons"] == 0


@pytest.mark.parametrize(("disconnected_by", "hold_abandon"), [
    (None, True), ("customer", True), ("agent", False), ("system", False),
])
def test_contact_ended_while_on_hold_is_a_hold_abandon_only_when_the_customer_left(
        disconnected_by, hold_abandon):
    fl = flow(queued(0), answered(10), hold_started(20), ended(65, disconnected_by=disconnected_by),
              wrapup_ended(80))

    assert fl.totals()["hold_abandons"] == (1 if hold_abandon else 0)
    assert fl.window()["hold_abandons"] == (1 if hold_abandon else 0)
    assert fl.histogram("hold")["s"] == 45.0
    assert fl.totals()["abandoned"] == 0
    assert fl.gauges() == {"waiting": 0, "on_hold": 0, "active": 0}


def test_hold_is_counted_on_the_queue_the_contact_was_answered_from():
    fl = Flow().run([queued(0, queue="support"), queued(5, queue="billing"), answered(10),
                     hold_started(20)])

    assert fl.gauges("billing") == {"waiting": 0, "on_hold": 1, "active": 1}
    assert fl.gauges("support") == {"waiting": 0, "on_hold": 0, "active": 0}
    fl.run([hold_ended(30), ended(40), wrapup_ended(50)]).finish()
    assert (fl.totals("billing")["holds"], fl.totals("support")["holds"]) == (1, 0)


def test_holds_before_and_after_a_requeue_count_on_each_answering_queue():
    fl = flow(queued(0, queue="support"), answered(5), hold_started(10), hold_ended(15),
              transferred(20, to_queue="billing"), queued(21, queue="billing"),
              answered(30, agent_id="a-2"), hold_started(40), hold_ended(50), ended(60),
              wrapup_ended(70))

    assert (fl.totals("support")["holds"], fl.totals("billing")["holds"]) == (1, 1)
    assert fl.window(queue="support")["average_hold_seconds"] == 5.0
    assert fl.window(queue="billing")["average_hold_seconds"] == 10.0


# ----- transfers --------------------------------------------------------------------------------


@pytest.mark.parametrize("transfer_type", ["blind", "warm", "external"])
def test_transfer_is_counted_by_type_on_the_answered_from_queue(transfer_type):
    fl = flow(queued(0, queue="support"), answered(10),
              transferred(40, transfer_type=transfer_type, to_queue="billing"), ended(41),
              wrapup_ended(50))

    assert fl.totals()["tr"] == {t: int(t == transfer_type) for t in ("blind", "warm", "external")}
    assert fl.window()["transfers"] == 1
    assert fl.window()["transfer_ratio"] == 1.0
    assert fl.totals("billing")["tr"] == {"blind": 0, "warm": 0, "external": 0}
    assert fl.records_of("ended")[0]["transfers"] == 1


def test_transfer_then_requeue_is_a_new_offer_answered_on_the_second_queue():
    fl = flow(queued(0, queue="support"), answered(10, agent_id="a-1"),
              transferred(40, transfer_type="blind", to_queue="billing"),
              queued(45, queue="billing"), answered(65, agent_id="a-2"), ended(200),
              wrapup_ended(230))

    support, billing = fl.totals("support"), fl.totals("billing")
    assert (support["queued"], support["answered"], sum(support["tr"].values())) == (1, 1, 1)
    assert (billing["queued"], billing["answered"], sum(billing["tr"].values())) == (1, 1, 0)
    assert fl.window(queue="support")["answer_wait_seconds"] == 10.0
    assert fl.window(queue="billing")["answer_wait_seconds"] == 20.0
    assert fl.window(queue="support")["transfer_ratio"] == 1.0
    assert fl.window(queue="billing")["transfer_ratio"] == 0.0
    left = [(r["queue"], r["outcome"], r["wait_ms"], r["agent_id"])
            for r in fl.records_of("left_queue")]
    assert left == [("support", f.ANSWERED, 10_000, "a-1"), ("billing", f.ANSWERED, 20_000, "a-2")]


def test_transfer_straight_to_another_agent_is_not_a_new_answer():
    fl = flow(queued(0), answered(10), transferred(40, transfer_type="warm"),
              answered(45, agent_id="a-2"), ended(100), wrapup_ended(120))

    assert fl.totals()["answered"] == 1
    assert fl.totals()["tr"]["warm"] == 1


def test_transfer_ratio_is_transfers_over_answered():
    fl = flow(*answered_call(5, "c-1"),
              queued(0, contact_id="c-2"), answered(5, contact_id="c-2"),
              transferred(20, contact_id="c-2"), ended(21, contact_id="c-2"),
              wrapup_ended(30, contact_id="c-2"))

    assert fl.window()["transfers"] == 1
    assert fl.window()["transfer_ratio"] == 0.5


# ----- handle time and chat first response ------------------------------------------------------


def test_handle_time_runs_from_answer_to_wrapup_end():
    fl = flow(queued(0), answered(10), hold_started(20), hold_ended(30), ended(70),
              wrapup_ended(100))

    assert fl.histogram("handle")["s"] == 90.0
    assert fl.window()["average_handle_seconds"] == 90.0
    [end] = fl.records_of("ended")
    assert end["handle_seconds"] == 90.0
    assert end["ended_at_ms"] == ms(70)


def test_chat_first_response_is_answer_to_first_agent_message():
    fl = flow(queued(0, channel="chat"), answered(10), chat(12, sender="customer"), chat(25),
              chat(30), ended(100), wrapup_ended(110))

    first_response = fl.histogram("first_response", channel="chat")
    assert first_response["s"] == 15.0
    assert sum(first_response["b"].values()) == 1


def test_customer_messages_alone_give_no_first_response():
    fl = flow(queued(0, channel="chat"), answered(10), chat(12, sender="customer"), ended(100))

    assert fl.histogram("first_response", channel="chat")["b"] == {}


# ----- duplicates and replays -------------------------------------------------------------------


def test_repeated_event_id_at_another_offset_is_a_duplicate_and_changes_nothing():
    fl = Flow().run([queued(0), answered(10)])
    before_contact, before_queues = copy.deepcopy(fl.contacts), copy.deepcopy(fl.queues)

    outcome = fl.send(answered(10), offset=99)

    assert outcome.duplicate and not outcome.replay
    assert outcome.facts == [] and outcome.records == []
    assert fl.contacts == before_contact
    assert fl.queues == before_queues


def test_same_event_id_at_the_same_offset_is_a_replay_and_changes_nothing():
    fl = Flow().run([queued(0), answered(10)])
    before_contact, before_queues = copy.deepcopy(fl.contacts), copy.deepcopy(fl.queues)

    outcome = fl.send(answered(10), offset=1)

    assert outcome.replay and not outcome.duplicate
    assert outcome.facts == []
    assert fl.contacts == before_contact
    assert fl.queues == before_queues


def test_duplicate_event_id_with_different_content_is_ignored():
    events = [queued(0), answered(10, event_id="e-2"), ended(70), wrapup_ended(80)]
    fl = flow(*events[:2], abandoned(11, event_id="e-2"), *events[2:])

    assert queue_numbers(fl) == queue_numbers(flow(*events))


def test_duplicates_of_every_event_leave_the_queue_numbers_unchanged():
    events = [queued(0), answered(10), hold_started(20), hold_ended(30), ended(40),
              wrapup_ended(50)]
    fl = flow(*events, *events)

    assert queue_numbers(fl) == queue_numbers(flow(*events))
    assert sorted_records(fl) == sorted_records(flow(*events))


def test_duplicate_of_a_finished_contact_is_recognised_from_its_tombstone():
    fl = flow(*abandoned_call(30))
    assert fl.contacts["c-1"]["done"] == 1

    outcome = fl.send(abandoned(30), offset=50)

    assert outcome.duplicate
    assert fl.totals()["abandoned"] == 1


# ----- reordering within the skew ---------------------------------------------------------------

# Contacts of at most six events, checked in every arrival order that stays within a 10 s skew:
# sweeps run after every arrival, so outcomes become final while later events are still coming.
SHORT_SKEW = lc.Limits(skew_ms=10_000)
SHORT_SCRIPTS = {
    "answered_with_hold": [queued(0), answered(4), hold_started(8), hold_ended(14), ended(20),
                           wrapup_ended(24)],
    "hold_abandon": [queued(0), answered(3), hold_started(6), ended(12, disconnected_by="customer"),
                     wrapup_ended(20)],
    "moved_then_abandoned": [queued(0, queue="support"), queued(5, queue="billing"), abandoned(12),
                             ended(12.5)],
    "short_abandon_by_hangup": [queued(0), ended(3)],
    "callback": [queued(0), callback(10), ended(11)],
    "transfer_and_requeue": [queued(0), answered(2),
                             transferred(5, transfer_type="warm", to_queue="billing"),
                             queued(6, queue="billing"), answered(9, agent_id="a-2"), ended(18)],
    "chat": [queued(0, channel="chat"), answered(3), chat(4, sender="customer"), chat(6), chat(7),
             ended(15)],
    "same_millisecond": [queued(0), answered(0), hold_started(0), hold_ended(0), ended(0),
                         wrapup_ended(0)],
}


def max_lateness_ms(order) -> int:
    """How far behind the newest earlier arrival the most out-of-order event of `order` is."""
    newest, worst = 0, 0
    for event in order:
        worst = max(worst, newest - event.occurred_at_ms)
        newest = max(newest, event.occurred_at_ms)
    return worst


def assert_same_result(fl: Flow, reference: Flow) -> None:
    assert queue_numbers(fl) == queue_numbers(reference)
    assert sorted_records(fl) == sorted_records(reference)


@pytest.mark.parametrize("name", SHORT_SCRIPTS)
def test_every_arrival_order_within_the_skew_gives_the_in_order_result(name):
    events = SHORT_SCRIPTS[name]
    reference = Flow(limits=SHORT_SKEW).run(in_order(events)).finish()
    checked = 0

    for order in itertools.permutations(events):
        if max_lateness_ms(order) < SHORT_SKEW.skew_ms:
            assert_same_result(Flow(limits=SHORT_SKEW).run(order).finish(), reference)
            checked += 1

    assert checked > 1


# Longer contacts: random arrival orders in which every event is less than the skew late
# (each event is delayed by a random amount below the skew).
LONG_SCRIPTS = {
    "transfer_requeue_hold": [
        queued(0, queue="support"), answered(40), hold_started(60), hold_ended(95),
        transferred(120, transfer_type="blind", to_queue="billing"), queued(121, queue="billing"),
        answered(170, agent_id="a-2"), hold_started(200), hold_ended(230), ended(400),
        wrapup_ended(460)],
    "chat": [queued(0, channel="chat"), answered(30), chat(31, sender="customer"), chat(45),
             chat(50), hold_started(60), hold_ended(70), transferred(80, transfer_type="external"),
             ended(90), wrapup_ended(150)],
    "requeue_then_hold_abandon": [
        queued(0), answered(2), transferred(5, transfer_type="warm", to_queue="billing"),
        queued(6, queue="billing"), answered(9, agent_id="a-2"), hold_started(12), ended(18)],
    "three_contacts": [*answered_call(25, "c-1"), *abandoned_call(70, "c-2", start=10),
                       queued(20, contact_id="c-3"), callback(300, contact_id="c-3")],
}


@pytest.mark.parametrize("name", LONG_SCRIPTS)
def test_random_arrival_orders_within_the_skew_give_the_in_order_result(name):
    events = LONG_SCRIPTS[name]
    reference = Flow().run(in_order(events)).finish()
    rng = random.Random(20261122)

    for _ in range(300):
        order = sorted(events, key=lambda e: e.occurred_at_ms + rng.uniform(0, LIMITS.skew_ms - 1))
        assert max_lateness_ms(order) < LIMITS.skew_ms
        assert_same_result(Flow().run(order).finish(), reference)


def test_event_arriving_exactly_the_skew_late_gives_the_in_order_result():
    in_order = [queued(0), answered(10), hold_started(20), clock(20 + SKEW_S), hold_ended(60),
                ended(70), wrapup_ended(80)]
    arrival = [queued(0), answered(10), clock(20 + SKEW_S), hold_started(20), hold_ended(60),
               ended(70), wrapup_ended(80)]

    reordered, reference = Flow().run(arrival).finish(), Flow().run(in_order).finish()

    assert reference.totals()["holds"] == 1
    assert_same_result(reordered, reference)


def test_first_response_does_not_depend_on_the_arrival_order_of_many_agent_messages():
    messages = [chat(6 + i) for i in range(LIMITS.max_chat_messages + 1)]
    head = [queued(0, channel="chat"), answered(5)]

    reference = Flow().run(head + messages).finish()
    reversed_arrival = Flow().run(head + messages[::-1]).finish()

    assert reference.histogram("first_response", channel="chat")["s"] == 1.0
    assert_same_result(reversed_arrival, reference)


# ----- late events ------------------------------------------------------------------------------

LATE_S = LIMITS.late_ms / 1000
WINDOWS = ("5m", "15m", "1h", "today")


def test_contact_older_than_stream_time_minus_1h_counts_in_lifetime_counters_only():
    fl = Flow().run([clock(2 * LATE_S)])
    late_events = [queued(0), answered(10), hold_started(20), hold_ended(30), ended(40),
                   wrapup_ended(50)]

    outcomes = [fl.send(e, sweep=False) for e in late_events]
    fl.finish()

    assert all(o.late for o in outcomes)
    totals = fl.totals()
    assert (totals["queued"], totals["answered"], totals["holds"]) == (1, 1, 1)
    assert fl.histogram("wait_answered")["s"] == 10.0
    for window in WINDOWS:
        values = fl.window(window)
        counts = (values["contacts_queued"], values["contacts_answered"], values["holds"])
        assert counts == (0, 0, 0), window
    assert fl.queue()["b"] == {} and fl.queue()["d"] == {}


def test_event_exactly_one_hour_old_is_not_late():
    fl = Flow().run([clock(LATE_S)])

    outcome = fl.send(queued(0))
    fl.finish()

    assert not outcome.late
    assert fl.window("today")["contacts_queued"] == 1


def test_late_answer_of_a_contact_queued_on_time_counts_in_lifetime_counters_only():
    fl = Flow().run([queued(0), clock(SKEW_S), clock(2 * LATE_S)])

    outcome = fl.send(answered(10))
    fl.finish()

    assert outcome.late
    assert fl.totals()["answered"] == 1
    assert fl.window("today")["contacts_answered"] == 0
    assert fl.window("today", now_ms=ms(20))["contacts_queued"] == 1


def test_late_contact_delivered_across_sweeps_counts_in_lifetime_counters():
    fl = Flow().run([clock(2 * LATE_S)])

    fl.run([queued(0), answered(10), ended(40), wrapup_ended(50)]).finish()

    totals = fl.totals()
    assert (totals["queued"], totals["answered"]) == (1, 1)
    assert fl.histogram("handle")["s"] == 40.0


def test_answer_arriving_later_than_the_skew_still_counts():
    fl = Flow().run([queued(0), clock(60)])

    fl.run([answered(10), ended(100), wrapup_ended(110)]).finish()

    assert fl.totals()["answered"] == 1
    assert fl.window("today")["contacts_answered"] == 1
    assert [r["outcome"] for r in fl.records_of("left_queue")] == [f.ANSWERED]


# ----- expiry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("expiry_s", [600, 4 * 3600])
def test_contact_silent_for_the_expiry_time_leaves_the_waiting_gauge_and_counts_expired(expiry_s):
    limits = lc.Limits(expiry_ms=expiry_s * 1000)
    fl = Flow(limits=limits).run([queued(0)])

    fl.sweep(ms(expiry_s) - 1)
    assert (fl.gauges()["waiting"], fl.totals()["expired"]) == (1, 0)

    fl.sweep(ms(expiry_s))
    assert (fl.gauges()["waiting"], fl.totals()["expired"]) == (0, 1)
    [record] = fl.records
    assert (record["outcome"], record["queue"]) == (f.OUTCOME_EXPIRED, "support")
    assert record["enqueued_at_ms"] == ms(0)
    assert fl.contacts["c-1"]["ev"] == []


def test_expiry_counts_from_the_last_event_of_the_contact():
    limits = lc.Limits(expiry_ms=600_000)
    fl = Flow(limits=limits).run([queued(0), answered(10), hold_started(300)])

    fl.sweep(ms(600))
    assert fl.gauges() == {"waiting": 0, "on_hold": 1, "active": 1}

    fl.sweep(ms(900))
    assert fl.gauges() == {"waiting": 0, "on_hold": 0, "active": 0}
    assert fl.totals()["expired"] == 1


def test_expired_record_keeps_the_holds_and_transfers_of_the_contact():
    fl = Flow().run([queued(0), answered(10), hold_started(20), hold_ended(30),
                     transferred(40, transfer_type="warm"), answered(45, agent_id="a-2")])

    fl.sweep(ms(45) + LIMITS.expiry_ms)

    [record] = fl.records_of("ended")
    assert record["outcome"] == f.OUTCOME_EXPIRED
    assert (record["holds"], record["hold_seconds"], record["transfers"]) == (1, 10.0, 1)


# ----- state size, tombstones, due_ms -----------------------------------------------------------


def test_finished_contact_becomes_a_tombstone_without_events():
    fl = flow(*answered_call(12))

    state = fl.contacts["c-1"]
    assert state["done"] == 1
    assert state["ev"] == [] and state["st"] is None
    assert len(state["seen"]) == 4


def test_tombstone_is_deleted_after_the_dedupe_retention():
    fl = flow(*abandoned_call(30))
    state = fl.contacts["c-1"]
    retention_end = ms(30) + LIMITS.dedupe_retention_ms

    assert lc.due_ms(state, LIMITS) == retention_end
    assert lc.finalize(state, "c-1", retention_end - 1, LIMITS, lambda q: 5.0).state is state
    assert lc.finalize(state, "c-1", retention_end, LIMITS, lambda q: 5.0).state is None


def test_due_ms_points_at_the_next_thing_to_do():
    fl = Flow()
    fl.send(queued(0), sweep=False)
    fl.send(answered(10), sweep=False)
    state = fl.contacts["c-1"]
    # A watermark W means "nothing before W can still arrive": an outcome at t is final once W > t.
    assert lc.due_ms(state, LIMITS) == ms(0) + 1  # the earliest outcome not yet final

    fl.sweep(ms(5))
    assert lc.due_ms(state, LIMITS) == ms(10) + 1

    fl.sweep(ms(10) + 1)
    assert lc.due_ms(state, LIMITS) == ms(10) + LIMITS.expiry_ms  # connected, nothing pending

    fl.send(ended(70), sweep=False)
    fl.sweep(ms(70) + 1)
    assert lc.due_ms(state, LIMITS) == ms(70) + LIMITS.wrapup_timeout_ms  # waiting for the wrap-up

    fl.send(wrapup_ended(100), sweep=False)
    assert lc.due_ms(state, LIMITS) == ms(100) + 1
    fl.sweep(ms(100) + 1)
    assert state["done"] == 1
    assert lc.due_ms(state, LIMITS) == ms(100) + LIMITS.dedupe_retention_ms


def test_finalize_only_considers_events_up_to_the_covered_offset():
    fl = Flow()
    fl.send(queued(0), offset=0, sweep=False)
    fl.send(answered(10), offset=1, sweep=False)
    fl.send(ended(20), offset=2, sweep=False)
    state = fl.contacts["c-1"]
    watermark = ms(20) + LIMITS.wrapup_timeout_ms

    def finalize(covered_offset: int) -> lc.Outcome:
        return lc.finalize(state, "c-1", watermark, LIMITS, fl.short_abandon_seconds,
                           covered_offset)

    first = finalize(0)
    assert (first.facts, first.records) == ([], [])  # the answer (offset 1) is not covered yet
    assert state["done"] == 0 and state["fo"] == 0

    second = finalize(1)
    assert [item["k"] for item in second.facts] == [f.LEFT_QUEUE]
    assert [record["record"] for record in second.records] == ["left_queue"]
    assert state["done"] == 0  # the end (offset 2) is still uncovered: no wrap-up timeout yet

    third = finalize(2)
    assert [record["record"] for record in third.records] == ["ended"]
    assert state["done"] == 1


# Histories of one contact: any event types, in any order, with ties, plausible or not; chat
# messages are drawn more often, so that the cap on stored messages comes into play.
CONTACT_EVENT_TYPES = [t for t in et.EVENT_TYPES if t != et.AGENT_STATE_CHANGED]
CONTACT_EVENT_TYPES += [et.CHAT_MESSAGE] * 4
_FIELD_VALUES = {
    et.CONTACT_QUEUED: st.fixed_dictionaries({"queue": st.sampled_from(["support", "billing"]),
                                              "channel": st.sampled_from(["voice", "chat"])}),
    et.CONTACT_ANSWERED: st.fixed_dictionaries({"agent_id": st.sampled_from(["a-1", "a-2"])}),
    et.CONTACT_TRANSFERRED: st.fixed_dictionaries({
        "transfer_type": st.sampled_from(["blind", "warm"]),
        "to_queue": st.sampled_from([None, "billing"])}),
    et.CONTACT_ENDED: st.fixed_dictionaries({
        "disconnected_by": st.sampled_from([None, "customer", "agent"])}),
    et.CHAT_MESSAGE: st.fixed_dictionaries({
        "sender": st.sampled_from(["agent", "agent", "customer"])}),
}


@st.composite
def contact_histories(draw) -> list[Event]:
    events = []
    for i in range(draw(st.integers(1, 14))):
        event_type = draw(st.sampled_from(CONTACT_EVENT_TYPES))
        fields = draw(_FIELD_VALUES.get(event_type, st.just({})))
        events.append(ev(event_type, draw(st.integers(0, 40)) * 5, event_id=f"e-{i:02d}", **fields))
    return events


histories = settings(max_examples=200, derandomize=True, database=None, deadline=None)
SMALL_CHAT_CAP = lc.Limits(max_chat_messages=3)


def receive(events, arrival_order, limits=SMALL_CHAT_CAP):
    """apply_event for each event in `arrival_order`; its offset is its index in `events`."""
    state = None
    for event in arrival_order:
        state = lc.apply_event(state, "c-1", event, events.index(event), 0, 0, limits,
                               lambda queue: 5.0).state
        yield state


@histories
@given(contact_histories(), st.randoms(use_true_random=False))
def test_stored_events_are_sorted_by_time_and_do_not_depend_on_the_arrival_order(events, rng):
    arrival = rng.sample(events, len(events))

    *_, reference = receive(events, events)
    *_, state = receive(events, arrival)

    assert state["ev"] == reference["ev"]
    times = [e[lc.T] for e in state["ev"]]
    assert times == sorted(times)
    agent_messages = [e for e in events if e.type == et.CHAT_MESSAGE and e.sender == "agent"]
    stored = [e for e in state["ev"] if e[lc.TYPE] == et.CHAT_MESSAGE]
    assert len(stored) == min(len(agent_messages), SMALL_CHAT_CAP.max_chat_messages)


@histories
@given(contact_histories(), st.randoms(use_true_random=False))
def test_status_and_end_time_kept_after_every_event_are_those_of_a_full_derive(events, rng):
    for state in receive(events, rng.sample(events, len(events))):
        derived = lc.derive("c-1", state["ev"], lambda queue: 5.0)
        assert state["st"] == derived.status
        assert state["end"] == (derived.end_ms if derived.status is None else None)


def expected_due_ms(state: dict, limits: lc.Limits) -> int:
    """due_ms by its definition: the earliest timeout, or the earliest event not final yet + 1."""
    quiet_since = max(state["last"], state.get("arr", 0))
    if state["done"]:
        return quiet_since + limits.dedupe_retention_ms
    candidates = [quiet_since + limits.expiry_ms]
    if state["end"] is not None:
        candidates.append(max(state["end"], quiet_since) + limits.wrapup_timeout_ms)
    candidates += [e[lc.T] + 1 for e in state["ev"]
                   if e[lc.T] >= state["fin"] or e[lc.OFFSET] > state["fo"]]
    return min(candidates)


@histories
@given(contact_histories(), st.randoms(use_true_random=False))
def test_due_ms_is_the_earliest_timeout_or_event_not_final_yet(events, rng):
    limits = lc.Limits(expiry_ms=600_000, wrapup_timeout_ms=60_000, dedupe_retention_ms=300_000)
    fl = Flow(limits=limits)

    for event in rng.sample(events, len(events)):
        fl.send(event, sweep=False)
        fl.sweep(ms(rng.randrange(0, 600)))
        if "c-1" in fl.contacts:
            state = fl.contacts["c-1"]
            assert lc.due_ms(state, limits) == expected_due_ms(state, limits)


def test_ended_contact_without_wrapup_end_is_done_after_the_wrapup_timeout_without_handle_time():
    fl = Flow().run([queued(0), answered(10), ended(70)])

    fl.sweep(ms(70) + LIMITS.wrapup_timeout_ms - 1)
    assert fl.records_of("ended") == []

    fl.sweep(ms(70) + LIMITS.wrapup_timeout_ms)
    [end] = fl.records_of("ended")
    assert end["handle_seconds"] is None and end["outcome"] == f.ANSWERED
    assert fl.histogram("handle")["b"] == {}
    assert fl.contacts["c-1"]["done"] == 1


def test_outcomes_wait_for_the_watermark_but_gauges_and_queue_entries_move_at_once():
    fl = Flow()

    fl.send(queued(0), sweep=False)
    assert fl.gauges()["waiting"] == 1 and fl.totals()["queued"] == 1

    fl.send(answered(10), sweep=False)
    assert fl.gauges() == {"waiting": 0, "on_hold": 0, "active": 1}
    fl.sweep(ms(10))  # an event at exactly the watermark may still arrive: not final yet
    assert (fl.totals()["queued"], fl.totals()["answered"]) == (1, 0)
    fl.sweep(ms(10) + 1)
    assert fl.totals()["answered"] == 1


def test_gauges_follow_the_contact_through_its_life():
    fl = Flow()
    steps = [
        (queued(0), {"waiting": 1, "on_hold": 0, "active": 0}),
        (answered(10), {"waiting": 0, "on_hold": 0, "active": 1}),
        (hold_started(20), {"waiting": 0, "on_hold": 1, "active": 1}),
        (hold_ended(30), {"waiting": 0, "on_hold": 0, "active": 1}),
        (ended(40), {"waiting": 0, "on_hold": 0, "active": 0}),
        (wrapup_ended(50), {"waiting": 0, "on_hold": 0, "active": 0}),
    ]
    for event, gauges in steps:
        fl.send(event)
        assert fl.gauges() == gauges, event.type


def test_agent_chat_messages_beyond_the_cap_are_not_stored():
    fl = Flow().run([queued(0, channel="chat"), answered(5)] + [chat(6 + i) for i in range(20)])

    stored = [e for e in fl.contacts["c-1"]["ev"] if e[lc.TYPE] == et.CHAT_MESSAGE]
    assert len(stored) == LIMITS.max_chat_messages


def test_gauge_deltas_of_an_unchanged_status_are_empty():
    status = [lc.WAITING, "support", "voice", ms(0)]

    assert lc.gauge_deltas(status, list(status)) == []
    assert lc.gauge_deltas(None, None) == []


def test_contact_queued_again_after_its_tombstone_starts_a_new_lifecycle():
    fl = flow(*abandoned_call(30))
    fl.sweep(ms(30) + LIMITS.dedupe_retention_ms - 1000)

    fl.run([queued(3600), answered(3610)]).finish()

    assert (fl.totals()["queued"], fl.totals()["answered"], fl.totals()["abandoned"]) == (2, 1, 1)


def test_contact_queued_again_before_its_wrapup_timeout_does_not_stay_waiting_forever():
    fl = Flow().run([queued(0), answered(10), ended(70), queued(600)])

    fl.sweep(ms(70) + LIMITS.wrapup_timeout_ms)
    fl.sweep(ms(600) + LIMITS.expiry_ms)

    assert fl.gauges()["waiting"] == 0
