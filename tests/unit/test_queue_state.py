"""Per-queue state: facts into counters, histograms, gauges and event-time windows.

Windows and current state are read at an explicit `now_ms`; no clock.
"""

from __future__ import annotations

import copy
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from streams.config import QueueTargets
from streams.contract.events import parse_occurred_at
from streams.lifecycle import facts as f
from streams.metrics.catalogue import ROLLING_WINDOW_SECONDS, wait_buckets
from streams.queues import state as qs
from streams.queues.windows import (
    estimated_wait_seconds,
    snapshot,
    waiting_now,
    window_values,
    window_vector,
)

# 2026-11-22T08:00:00Z, a whole number of 10 s buckets.
T0_MS = 1_795_334_400_000
UTC = ZoneInfo("UTC")
TARGETS = QueueTargets()
WAIT_EDGES = wait_buckets({TARGETS.service_level_threshold_seconds, TARGETS.short_abandon_seconds})
MAX_AGE_MS = 4 * 3600_000


def ms(t_seconds: float) -> int:
    return T0_MS + round(t_seconds * 1000)


def fact(kind: str, t_seconds: float, **extra) -> dict:
    return {"k": kind, "t": ms(t_seconds), "q": "support", "c": "voice", **extra}


def enqueued(t):
    return fact(f.ENQUEUED, t)


def left(t, outcome, wait_s):
    return fact(f.LEFT_QUEUE, t, o=outcome, wait=round(wait_s * 1000))


def answered(t, wait_s):
    return left(t, f.ANSWERED, wait_s)


def abandoned(t, wait_s):
    return left(t, f.ABANDONED, wait_s)


def waiting(enqueued_s, delta=1):
    return {"k": f.GAUGE, "q": "support", "c": "voice", "w": ms(enqueued_s) // 1000, "dw": delta}


def at(t_seconds: float, offset: int, index: int = 0, source: int = f.SRC_INPUT,
       partition: int = 0) -> dict:
    """A queue entry at T0 + t_seconds stamped with src=[source, partition, offset, index]."""
    return dict(enqueued(t_seconds), src=[source, partition, offset, index])


def applies(state: dict, item: dict) -> bool:
    return qs.apply_fact(state, item, TARGETS, UTC, WAIT_EDGES)


def apply(state, *facts, targets=TARGETS, zone=UTC):
    for item in facts:
        qs.apply_fact(state, item, targets, zone, WAIT_EDGES)
    return state


def queue_with(*facts, targets=TARGETS, zone=UTC) -> dict:
    return apply(qs.new_queue_state(), *facts, targets=targets, zone=zone)


def values(state, window, now_ms, zone=UTC) -> dict:
    return window_values(window_vector(state, window, now_ms, zone))


# ----- replay marks -----------------------------------------------------------------------------

FACT_KINDS = {
    "enqueued": enqueued(0),
    "answered": answered(10, 10),
    "abandoned": abandoned(10, 30),
    "hold_ended": fact(f.HOLD_ENDED, 40, dur=20_000, ab=1),
    "transferred": fact(f.TRANSFERRED, 50, tt="warm"),
    "handled": fact(f.HANDLED, 60, dur=90_000),
    "gauge": waiting(0),
}


@pytest.mark.parametrize("name", FACT_KINDS)
def test_fact_applied_twice_with_the_same_src_changes_nothing(name):
    item = dict(FACT_KINDS[name], src=[f.SRC_INPUT, 0, 7, 0])
    state = queue_with(item)
    before = copy.deepcopy(state)

    assert applies(state, dict(item)) is False
    assert state == before


def test_fact_from_an_earlier_position_of_the_same_source_is_skipped():
    state = queue_with(at(0, offset=5, index=1))

    assert not applies(state, at(1, offset=5, index=0))
    assert not applies(state, at(2, offset=4, index=9))
    assert applies(state, at(3, offset=5, index=2))
    assert applies(state, at(4, offset=6, index=0))
    assert state["n"]["queued"] == 3


def test_facts_from_different_sources_have_independent_marks():
    state = queue_with(at(0, offset=100))

    assert applies(state, at(1, offset=3, source=f.SRC_TICK))
    assert applies(state, at(2, offset=2, partition=1))
    assert applies(state, at(3, offset=1, source=f.SRC_TICK, partition=1))
    assert not applies(state, at(4, offset=100))
    assert state["n"]["queued"] == 4
    assert set(state["hwm"]) == {"0.0", "1.0", "0.1", "1.1"}


def test_facts_of_several_contacts_in_one_tick_are_told_apart_by_position():
    first = dict(enqueued(0), src=[f.SRC_TICK, 0, 7, 0])
    second = dict(enqueued(1), src=[f.SRC_TICK, 0, 7, 1 * 10_000])
    state = queue_with(first, second)

    assert state["n"]["queued"] == 2
    assert not applies(state, dict(first))
    assert not applies(state, dict(second))


# ----- counters and histograms ------------------------------------------------------------------


@pytest.mark.parametrize(("item", "counter"), [
    (enqueued(0), "queued"),
    (answered(10, 10), "answered"),
    (abandoned(10, 30), "abandoned"),
    (abandoned(10, 2), "short_abandoned"),
    (left(10, f.CALLBACK, 10), "callback"),
    (fact(f.HOLD_STARTED, 10), "holds"),
    (fact(f.HOLD_ENDED, 10, dur=5000, ab=1), "hold_abandons"),
    (fact(f.EXPIRED, 10, wait=100), "expired"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_each_fact_moves_its_own_counter(item, counter):
    state = queue_with(item)

    n = state["n"]
    assert n[counter] == 1
    assert sum(v for k, v in n.items() if k != "tr") == 1


def test_contact_moved_to_another_queue_counts_no_outcome_on_the_first():
    state = queue_with(enqueued(0), left(10, f.QUEUE_TRANSFERRED, 10))

    assert state["n"]["queued"] == 1
    assert sum(v for k, v in state["n"].items() if k not in ("queued", "tr")) == 0
    assert values(state, "1h", ms(20)) == values(queue_with(enqueued(0)), "1h", ms(20))


@pytest.mark.parametrize("transfer_type", ["blind", "warm", "external"])
def test_transfer_counts_by_type(transfer_type):
    state = queue_with(fact(f.TRANSFERRED, 10, tt=transfer_type))

    assert state["n"]["tr"] == {t: int(t == transfer_type) for t in ("blind", "warm", "external")}


@pytest.mark.parametrize(("threshold_s", "wait_s", "within"), [
    (20, 20, True), (20, 20.001, False), (30, 25, True), (30, 30, True), (30, 30.001, False),
    (15, 16, False),
])
def test_service_level_uses_the_queue_threshold_inclusive(threshold_s, wait_s, within):
    targets = QueueTargets(service_level_threshold_seconds=threshold_s)
    state = queue_with(answered(40, wait_s), targets=targets)

    assert values(state, "1h", ms(40))["service_level_ratio"] == (1.0 if within else 0.0)


@pytest.mark.parametrize(("short_s", "wait_s", "short"), [
    (5, 4.999, True), (5, 5, False), (10, 9, True), (10, 10, False), (0, 0, False),
])
def test_short_abandon_uses_the_queue_threshold_exclusive(short_s, wait_s, short):
    targets = QueueTargets(short_abandon_seconds=short_s)
    state = queue_with(abandoned(40, wait_s), targets=targets)

    assert (state["n"]["short_abandoned"], state["n"]["abandoned"]) == ((1, 0) if short else (0, 1))
    assert sum(state["h"]["wait_abandoned"]["b"].values()) == (0 if short else 1)


@pytest.mark.parametrize(("wait_s", "bucket"), [
    (0, "5.0"), (5, "5.0"), (19.999, "20.0"), (20, "20.0"), (20.001, "30.0"), (3600, "3600.0"),
    (3601, "+Inf"),
])
def test_wait_histogram_counts_each_wait_under_the_smallest_edge_at_or_above_it(wait_s, bucket):
    state = queue_with(answered(4000, wait_s))

    assert state["h"]["wait_answered"] == {"b": {bucket: 1}, "s": pytest.approx(wait_s)}


# ----- rolling windows --------------------------------------------------------------------------

NOW_MS = ms(7200)  # a bucket boundary


def inside_cases():
    for window, length in ROLLING_WINDOW_SECONDS.items():
        for age_s in (0, 0.5, 1, length // 2, length - 10, length - 9, length - 1, length):
            yield pytest.param(window, age_s, id=f"{window}-{age_s}s")


@pytest.mark.parametrize(("window", "age_s"), inside_cases())
def test_rolling_window_counts_facts_within_its_length_before_now(window, age_s):
    state = queue_with(enqueued(7200 - age_s), answered(7200, 1))

    assert values(state, window, NOW_MS)["contacts_queued"] == 1


@pytest.mark.parametrize("window", ["5m", "15m", "1h"])
@pytest.mark.parametrize("extra_s", [10, 11, 60])
def test_rolling_window_leaves_out_facts_a_bucket_or_more_older_than_its_length(window, extra_s):
    length = ROLLING_WINDOW_SECONDS[window]
    state = queue_with(enqueued(7200 - length - extra_s), answered(7200, 1))

    assert values(state, window, NOW_MS)["contacts_queued"] == 0
    assert values(state, window, NOW_MS)["contacts_answered"] == 1


@pytest.mark.parametrize("window", ["5m", "15m", "1h"])
def test_rolling_window_leaves_out_future_buckets(window):
    state = queue_with(answered(7200 - 5, 1), answered(7200 + 10, 2), answered(7200 + 600, 3))

    assert values(state, window, NOW_MS - 1)["contacts_answered"] == 1


def test_rolling_window_includes_the_current_partial_bucket():
    state = queue_with(answered(7200 + 9.5, 4))

    assert values(state, "5m", ms(7200 + 9.9))["contacts_answered"] == 1


def test_window_values_of_an_empty_window_are_zero_counts_and_no_ratios():
    out = values(qs.new_queue_state(), "15m", NOW_MS)

    assert {k: v for k, v in out.items() if v is not None} == {
        "contacts_queued": 0, "contacts_answered": 0, "contacts_abandoned": 0,
        "contacts_short_abandoned": 0, "holds": 0, "hold_abandons": 0, "transfers": 0}
    assert [k for k, v in out.items() if v is None] == [
        "abandon_ratio", "service_level_ratio", "answer_wait_seconds", "average_hold_seconds",
        "transfer_ratio", "average_handle_seconds"]


def test_window_values_follow_the_definitions():
    state = queue_with(
        enqueued(0), enqueued(1), enqueued(2), enqueued(3), enqueued(4),
        answered(20, 10), answered(30, 25), abandoned(40, 30), abandoned(41, 2),
        fact(f.HOLD_STARTED, 50), fact(f.HOLD_ENDED, 80, dur=30_000, ab=0),
        fact(f.HOLD_STARTED, 90), fact(f.HOLD_ENDED, 100, dur=10_000, ab=1),
        fact(f.TRANSFERRED, 110, tt="blind"),
        fact(f.HANDLED, 200, dur=120_000), fact(f.HANDLED, 210, dur=60_000),
    )

    assert values(state, "5m", ms(210)) == {
        "contacts_queued": 5, "contacts_answered": 2, "contacts_abandoned": 1,
        "contacts_short_abandoned": 1,
        "abandon_ratio": pytest.approx(1 / 3), "service_level_ratio": pytest.approx(1 / 3),
        "answer_wait_seconds": 17.5, "holds": 2, "hold_abandons": 1, "average_hold_seconds": 20.0,
        "transfers": 1, "transfer_ratio": 0.5, "average_handle_seconds": 90.0,
    }


def test_buckets_older_than_the_longest_window_are_pruned():
    state = queue_with(*[enqueued(t) for t in range(0, 3 * 3600, 60)])

    newest = max(int(k) for k in state["b"])
    assert newest - min(int(k) for k in state["b"]) <= qs.RETENTION_SECONDS + qs.BUCKET_SECONDS
    assert len(state["b"]) <= (qs.RETENTION_SECONDS // qs.BUCKET_SECONDS) + 2
    assert state["n"]["queued"] == 180


def test_fact_older_than_the_bucket_retention_still_counts_today():
    state = queue_with(enqueued(7200), enqueued(0))

    assert values(state, "today", ms(7200))["contacts_queued"] == 2
    assert values(state, "1h", ms(7200))["contacts_queued"] == 1


def test_late_fact_changes_lifetime_counters_only():
    state = queue_with(enqueued(7200))
    windows_before = copy.deepcopy((state["b"], state["d"]))

    apply(state, dict(answered(7200 - 100, 5), l=1),
          dict(fact(f.HOLD_ENDED, 7200 - 90, dur=5000, ab=1), l=1))

    assert (state["n"]["answered"], state["n"]["hold_abandons"]) == (1, 1)
    assert state["h"]["wait_answered"]["s"] == 5.0
    assert (state["b"], state["d"]) == windows_before
    for window in ("5m", "15m", "1h", "today"):
        assert values(state, window, ms(7200))["contacts_answered"] == 0


# ----- "today" and local midnight ---------------------------------------------------------------

MIDNIGHTS = [
    ("UTC", "2026-11-23T00:00:00Z"),
    ("Europe/Berlin", "2026-11-22T23:00:00Z"),  # CET
    ("Europe/Berlin", "2026-03-28T23:00:00Z"),  # the start of the 23 h day (DST begins at 01:00Z)
    ("Europe/Berlin", "2026-03-29T22:00:00Z"),  # first midnight in CEST
    ("Europe/Berlin", "2026-10-24T22:00:00Z"),  # the start of the 25 h day (DST ends at 01:00Z)
    ("America/New_York", "2026-03-08T05:00:00Z"),  # EST, DST begins at 07:00Z that day
    ("America/New_York", "2026-03-09T04:00:00Z"),  # EDT
    ("Asia/Kolkata", "2026-11-22T18:30:00Z"),
]


@pytest.mark.parametrize(("zone_name", "midnight"), MIDNIGHTS)
def test_today_resets_at_local_midnight(zone_name, midnight):
    zone = ZoneInfo(zone_name)
    midnight_ms = parse_occurred_at(midnight)
    local = datetime.fromtimestamp(midnight_ms / 1000, zone)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    before = {"k": f.LEFT_QUEUE, "t": midnight_ms - 1, "q": "support", "c": "voice",
              "o": f.ANSWERED, "wait": 1000}
    after = dict(before, t=midnight_ms, wait=3000)

    state = queue_with(before, after, zone=zone)

    today_before = values(state, "today", midnight_ms - 1, zone)
    today_after = values(state, "today", midnight_ms + 3600_000, zone)
    assert (today_before["contacts_answered"], today_before["answer_wait_seconds"]) == (1, 1.0)
    assert (today_after["contacts_answered"], today_after["answer_wait_seconds"]) == (1, 3.0)


@pytest.mark.parametrize(("zone_name", "start", "end", "hours"), [
    ("Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23),
    ("Europe/Berlin", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 25),
    ("America/New_York", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", 23),
])
def test_today_spans_the_whole_local_day_when_the_clock_changes(zone_name, start, end, hours):
    zone = ZoneInfo(zone_name)
    start_ms, end_ms = parse_occurred_at(start), parse_occurred_at(end)
    assert end_ms - start_ms == hours * 3600_000
    first = {"k": f.ENQUEUED, "t": start_ms, "q": "support", "c": "voice"}

    state = queue_with(first, dict(first, t=start_ms + 12 * 3600_000), dict(first, t=end_ms - 1),
                       zone=zone)

    assert values(state, "today", end_ms - 1, zone)["contacts_queued"] == 3
    assert values(state, "today", end_ms, zone)["contacts_queued"] == 0


def test_utc_midnight_does_not_reset_today_in_berlin():
    zone = ZoneInfo("Europe/Berlin")
    first = {"k": f.ENQUEUED, "t": parse_occurred_at("2026-11-22T23:30:00Z"), "q": "support",
             "c": "voice"}
    second = dict(first, t=parse_occurred_at("2026-11-23T00:30:00Z"))

    state = queue_with(first, second, zone=zone)

    now_ms = parse_occurred_at("2026-11-23T01:00:00Z")
    assert values(state, "today", now_ms, zone)["contacts_queued"] == 2


def test_day_totals_stay_bounded_to_the_most_recent_days():
    state = queue_with(*[enqueued(day * 86400) for day in range(5)])

    assert len(state["d"]) <= 3
    assert "2026-11-22" not in state["d"] and "2026-11-26" in state["d"]
    assert state["n"]["queued"] == 5


# ----- current state ----------------------------------------------------------------------------


def test_waiting_now_counts_waiting_contacts_and_the_oldest_wait():
    state = queue_with(waiting(100), waiting(130), waiting(130), waiting(150), waiting(150, -1))

    assert waiting_now(state, ms(160), MAX_AGE_MS) == (3, 60.0)


def test_oldest_wait_keeps_growing_between_events():
    state = queue_with(waiting(100))

    oldest = [waiting_now(state, ms(t), MAX_AGE_MS)[1] for t in (100, 130, 400.5)]
    assert oldest == [0.0, 30.0, 300.5]


def test_waiting_now_is_zero_for_an_empty_queue():
    assert waiting_now(qs.new_queue_state(), NOW_MS, MAX_AGE_MS) == (0, 0.0)


def test_waiting_now_hides_contacts_older_than_the_max_age_before_they_expire():
    max_age_s = MAX_AGE_MS / 1000
    state = queue_with(waiting(0), waiting(1))

    assert waiting_now(state, ms(max_age_s), MAX_AGE_MS) == (2, max_age_s)
    assert waiting_now(state, ms(max_age_s + 1), MAX_AGE_MS) == (1, max_age_s)
    assert waiting_now(state, ms(max_age_s + 2), MAX_AGE_MS) == (0, 0.0)


def test_hold_and_active_gauges_follow_their_deltas():
    delta = {"k": f.GAUGE, "q": "support", "c": "voice"}
    state = queue_with(dict(delta, da=1), dict(delta, da=1, dh=1), dict(delta, da=1),
                       dict(delta, da=-1, dh=-1))

    assert (state["active"], state["hold"]) == (2, 0)


# ----- estimated wait ---------------------------------------------------------------------------


def vector(answered_count: int, wait_sum_s: float) -> list[int]:
    out = [0] * qs.VECTOR_SIZE
    out[qs.ANSWERED] = answered_count
    out[qs.WAIT_SUM_MS] = round(wait_sum_s * 1000)
    return out


@pytest.mark.parametrize(("waiting_count", "answered_count", "wait_sum_s", "expected"), [
    (0, 9, 90, 10.0),  # empty queue: what recent callers waited (ASA)
    (3, 9, 90, 300.0),  # backlog: 3 waiting / (9 answered per 900 s)
    (1, 90, 1800, 20.0),  # the ASA is larger than the backlog time (1 / 0.1 per s = 10 s)
    (5, 1, 0, 4500.0),
])
def test_estimated_wait_is_the_larger_of_asa_and_backlog_over_answer_rate(
        waiting_count, answered_count, wait_sum_s, expected):
    estimate = estimated_wait_seconds(waiting_count, vector(answered_count, wait_sum_s))

    assert estimate == pytest.approx(expected)


@pytest.mark.parametrize("waiting_count", [0, 4])
def test_estimated_wait_is_none_when_nobody_was_answered_in_15_minutes(waiting_count):
    assert estimated_wait_seconds(waiting_count, vector(0, 0)) is None


def test_snapshot_estimates_the_wait_from_the_waiting_contacts_and_the_last_15_minutes():
    state = queue_with(answered(1000, 30), answered(1500, 10), waiting(1600), waiting(1700))

    current = snapshot("support", "voice", state, ms(1800), UTC, TARGETS, MAX_AGE_MS)["current"]
    assert current["waiting_contacts"] == 2
    assert current["oldest_wait_seconds"] == 200.0
    assert current["estimated_wait_seconds"] == pytest.approx(2 / (2 / 900))

    later = snapshot("support", "voice", state, ms(1500 + 900 + 10), UTC, TARGETS,
                     MAX_AGE_MS)["current"]
    assert later["estimated_wait_seconds"] is None


def test_snapshot_reports_windows_totals_and_targets():
    targets = QueueTargets(service_level_threshold_seconds=30)
    state = queue_with(enqueued(0), answered(25, 25), fact(f.TRANSFERRED, 40, tt="warm"),
                       targets=targets)

    out = snapshot("support", "voice", state, ms(60), UTC, targets, MAX_AGE_MS)

    assert (out["queue"], out["channel"]) == ("support", "voice")
    assert out["at"] == "2026-11-22T08:01:00.000Z"
    assert set(out["windows"]) == {"5m", "15m", "1h", "today"}
    assert out["windows"]["5m"]["service_level_ratio"] == 1.0
    assert out["totals"]["contacts_answered"] == 1 and out["totals"]["transfers"] == 1
    assert out["targets"]["service_level_threshold_seconds"] == 30
