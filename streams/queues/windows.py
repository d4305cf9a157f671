"""Read a queue's state as of a moment: window values, current state, estimated wait.

Rolling windows end at `now` and are read from 10-second event-time buckets:
the "5m" window is the 31 most recent buckets, the current (partial) one
included, so it holds every event of the last 5 minutes and starts between 0
and 10 s before now - 5m (never later: a window is never short). "today" is the running total
of the local day of `now` in the configured time zone. A ratio or mean whose
denominator is zero is None (not exported).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from streams.config import QueueTargets
from streams.metrics.catalogue import ROLLING_WINDOW_SECONDS, WINDOWS
from streams.queues import state as qs


def window_vector(state: dict, window: str, now_ms: int, zone: ZoneInfo) -> list[int]:
    """Sum of the window's buckets (or the day total for "today")."""
    if window == "today":
        day = state["d"].get(qs.local_day(now_ms, zone))
        return list(day) if day else [0] * qs.VECTOR_SIZE
    now_s = now_ms // 1000
    newest = now_s // qs.BUCKET_SECONDS * qs.BUCKET_SECONDS
    oldest = newest - ROLLING_WINDOW_SECONDS[window]
    total = [0] * qs.VECTOR_SIZE
    for key, vector in state["b"].items():
        if oldest <= int(key) <= newest:
            for i, value in enumerate(vector):
                total[i] += value
    return total


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def window_values(vector: list[int]) -> dict:
    """The exported values of one window vector (names as in the queue-stats record)."""
    answered, abandoned = vector[qs.ANSWERED], vector[qs.ABANDONED]
    offered = answered + abandoned  # short abandons excluded from both
    return {
        "contacts_queued": vector[qs.QUEUED],
        "contacts_answered": answered,
        "contacts_abandoned": abandoned,
        "contacts_short_abandoned": vector[qs.SHORT],
        "abandon_ratio": _ratio(abandoned, offered),
        "service_level_ratio": _ratio(vector[qs.ANSWERED_IN_SL], offered),
        "answer_wait_seconds": _ratio(vector[qs.WAIT_SUM_MS] / 1000, answered),
        "holds": vector[qs.HOLDS],
        "hold_abandons": vector[qs.HOLD_ABANDONS],
        "average_hold_seconds": _ratio(vector[qs.HOLD_SUM_MS] / 1000, vector[qs.HOLDS_ENDED]),
        "transfers": vector[qs.TRANSFERS],
        "transfer_ratio": _ratio(vector[qs.TRANSFERS], answered),
        "average_handle_seconds": _ratio(vector[qs.HANDLE_SUM_MS] / 1000, vector[qs.HANDLED]),
    }


def waiting_now(state: dict, now_ms: int, max_age_ms: int) -> tuple[int, float]:
    """(contacts waiting, oldest wait in seconds) at `now_ms`.

    Contacts queued longer ago than `max_age_ms` (the expiry time) are left out
    even before the stream expires them, so a silent input never shows a ghost
    caller waiting for hours.
    """
    now_s = now_ms / 1000
    floor_s = (now_ms - max_age_ms) // 1000
    count = 0
    oldest_s = None
    for key, n in state["wait"].items():
        enqueued_s = int(key)
        if enqueued_s < floor_s:
            continue
        count += n
        if oldest_s is None or enqueued_s < oldest_s:
            oldest_s = enqueued_s
    oldest = max(0.0, now_s - oldest_s) if oldest_s is not None else 0.0
    return count, oldest


def estimated_wait_seconds(waiting: int, last_15m: list[int]) -> float | None:
    """Expected wait of a contact queued now.

    max(ASA of the last 15 minutes, waiting / answer rate of the last 15
    minutes): with an empty queue, what recent callers waited; with a backlog,
    the time the observed answer rate needs to serve everybody ahead. None
    (not exported) when nobody was answered in the last 15 minutes.
    """
    answered = last_15m[qs.ANSWERED]
    if not answered:
        return None
    asa = last_15m[qs.WAIT_SUM_MS] / 1000 / answered
    answer_rate_per_s = answered / ROLLING_WINDOW_SECONDS["15m"]
    return max(asa, waiting / answer_rate_per_s)


def snapshot(queue: str, channel: str, state: dict, now_ms: int, zone: ZoneInfo,
             targets: QueueTargets, max_age_ms: int) -> dict:
    """One queue and channel as the queue-stats record and the /queues API show it."""
    from streams.contract.events import format_ms

    waiting, oldest = waiting_now(state, now_ms, max_age_ms)
    vectors = {w: window_vector(state, w, now_ms, zone) for w in WINDOWS}
    n = state["n"]
    return {
        "queue": queue,
        "channel": channel,
        "at": format_ms(now_ms),
        "current": {
            "waiting_contacts": waiting,
            "oldest_wait_seconds": oldest,
            "on_hold_contacts": state["hold"],
            "active_contacts": state["active"],
            "estimated_wait_seconds": estimated_wait_seconds(waiting, vectors["15m"]),
        },
        "windows": {w: window_values(v) for w, v in vectors.items()},
        "targets": targets.model_dump(),
        "totals": {
            "contacts_queued": n["queued"],
            "contacts_answered": n["answered"],
            "contacts_abandoned": n["abandoned"],
            "contacts_short_abandoned": n["short_abandoned"],
            "contacts_callback": n["callback"],
            "holds": n["holds"],
            "hold_abandons": n["hold_abandons"],
            "transfers": sum(n["tr"].values()),
            "contacts_expired": n["expired"],
        },
    }
