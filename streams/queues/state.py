"""Per-queue state: apply lifecycle facts to counters, histograms, gauges and event-time windows.

One plain dict per queue and channel (a Faust table value), updated by
`apply_fact` only. Everything about one queue lives in that one value, so each
change reaches the changelog as one message, together with `hwm`, the
high-water mark of the facts applied from each source partition: a fact
replayed after a restart is recognised and skipped, nothing counts twice.

Windows are kept as 10-second event-time buckets for the last hour plus one
total per local day (see streams.queues.windows for how they are read).
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from zoneinfo import ZoneInfo

from streams.config import QueueTargets
from streams.lifecycle import facts as f
from streams.metrics.catalogue import (
    FIRST_RESPONSE_BUCKETS,
    HANDLE_BUCKETS,
    HOLD_BUCKETS,
)

BUCKET_SECONDS = 10
RETENTION_SECONDS = 3600 + BUCKET_SECONDS  # longest rolling window plus the partial bucket

# Layout of one window vector (a bucket or a day total).
QUEUED, ANSWERED, ABANDONED, SHORT, ANSWERED_IN_SL, WAIT_SUM_MS, HOLDS, HOLD_ABANDONS, \
    HOLDS_ENDED, HOLD_SUM_MS, TRANSFERS, HANDLED, HANDLE_SUM_MS = range(13)
VECTOR_SIZE = 13

COUNTERS = ("queued", "answered", "abandoned", "short_abandoned", "callback", "holds",
            "hold_abandons", "expired")
TRANSFER_TYPES = ("blind", "warm", "external")
HISTOGRAMS = ("wait_answered", "wait_abandoned", "hold", "handle", "first_response")


def new_queue_state() -> dict:
    return {
        "hwm": {},
        "st": 0,
        "n": dict.fromkeys(COUNTERS, 0) | {"tr": dict.fromkeys(TRANSFER_TYPES, 0)},
        "h": {name: {"b": {}, "s": 0.0} for name in HISTOGRAMS},
        "wait": {},
        "hold": 0,
        "active": 0,
        "b": {},
        "d": {},
    }


def is_applied(state: dict, src: list) -> bool:
    """True when the fact `src` was already applied (a replay); marks it applied otherwise."""
    source = f"{src[0]}.{src[1]}"
    position = [src[2], src[3]]
    mark = state["hwm"].get(source)
    if mark is not None and mark >= position:
        return True
    state["hwm"][source] = position
    return False


def local_day(t_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(t_ms / 1000, zone).date().isoformat()


def _observe(histogram: dict, edges: tuple[float, ...], value_seconds: float) -> None:
    """Count one observation under the smallest edge >= value (le semantics); "+Inf" past the last."""
    i = bisect_left(edges, value_seconds)
    key = repr(float(edges[i])) if i < len(edges) else "+Inf"
    buckets = histogram["b"]
    buckets[key] = buckets.get(key, 0) + 1
    histogram["s"] += value_seconds


def _windows(state: dict, t_ms: int, zone: ZoneInfo) -> list[list[int]]:
    """The window vectors a fact at t_ms counts in: its 10 s bucket (if still kept) and its day."""
    vectors = []
    if t_ms // 1000 >= state["st"] // 1000 - RETENTION_SECONDS:
        bucket = str(t_ms // 1000 // BUCKET_SECONDS * BUCKET_SECONDS)
        vectors.append(state["b"].setdefault(bucket, [0] * VECTOR_SIZE))
    days = state["d"]
    day = local_day(t_ms, zone)
    if day in days or not days or day > max(days):
        vectors.append(days.setdefault(day, [0] * VECTOR_SIZE))
    return vectors


def _prune(state: dict) -> None:
    oldest = state["st"] // 1000 - RETENTION_SECONDS
    buckets = state["b"]
    for key in [k for k in buckets if int(k) < oldest - BUCKET_SECONDS]:
        del buckets[key]
    days = state["d"]
    if len(days) > 2:
        for key in sorted(days)[:-2]:
            del days[key]


def apply_fact(state: dict, fact: dict, targets: QueueTargets, zone: ZoneInfo,
               wait_edges: tuple[float, ...]) -> bool:
    """Apply one fact; return False when it was a replay and changed nothing."""
    if "src" in fact and is_applied(state, fact["src"]):
        return False
    kind = fact["k"]
    if kind == f.GAUGE:
        _apply_gauge(state, fact)
        return True
    t = fact["t"]
    if t > state["st"]:
        state["st"] = t
        _prune(state)
    late = fact.get("l", 0)
    windows = [] if late else _windows(state, t, zone)
    n = state["n"]
    h = state["h"]

    def add(index: int, amount: int = 1) -> None:
        for vector in windows:
            vector[index] += amount

    if kind == f.ENQUEUED:
        n["queued"] += 1
        add(QUEUED)
    elif kind == f.LEFT_QUEUE:
        outcome, wait_ms = fact["o"], fact["wait"]
        if outcome == f.ANSWERED:
            n["answered"] += 1
            add(ANSWERED)
            add(WAIT_SUM_MS, wait_ms)
            if wait_ms <= targets.service_level_threshold_seconds * 1000:
                add(ANSWERED_IN_SL)
            _observe(h["wait_answered"], wait_edges, wait_ms / 1000)
        elif outcome == f.ABANDONED:
            if f.is_short_abandon(wait_ms, targets.short_abandon_seconds):
                n["short_abandoned"] += 1
                add(SHORT)
            else:
                n["abandoned"] += 1
                add(ABANDONED)
                _observe(h["wait_abandoned"], wait_edges, wait_ms / 1000)
        elif outcome == f.CALLBACK:
            n["callback"] += 1
    elif kind == f.HOLD_STARTED:
        n["holds"] += 1
        add(HOLDS)
    elif kind == f.HOLD_ENDED:
        duration = fact["dur"]
        add(HOLDS_ENDED)
        add(HOLD_SUM_MS, duration)
        _observe(h["hold"], HOLD_BUCKETS, duration / 1000)
        if fact.get("ab"):
            n["hold_abandons"] += 1
            add(HOLD_ABANDONS)
    elif kind == f.TRANSFERRED:
        transfers = n["tr"]
        transfers[fact["tt"]] = transfers.get(fact["tt"], 0) + 1
        add(TRANSFERS)
    elif kind == f.HANDLED:
        add(HANDLED)
        add(HANDLE_SUM_MS, fact["dur"])
        _observe(h["handle"], HANDLE_BUCKETS, fact["dur"] / 1000)
    elif kind == f.FIRST_RESPONSE:
        _observe(h["first_response"], FIRST_RESPONSE_BUCKETS, fact["dur"] / 1000)
    elif kind == f.EXPIRED:
        n["expired"] += 1
    return True


def _apply_gauge(state: dict, fact: dict) -> None:
    if "dw" in fact:
        waiting = state["wait"]
        key = str(fact["w"])
        count = waiting.get(key, 0) + fact["dw"]
        if count > 0:
            waiting[key] = count
        else:
            waiting.pop(key, None)
    if "da" in fact:
        state["active"] = max(0, state["active"] + fact["da"])
    if "dh" in fact:
        state["hold"] = max(0, state["hold"] + fact["dh"])
