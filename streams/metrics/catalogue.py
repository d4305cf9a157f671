"""The metric catalogue: every exported name, type, label set and help text, in one place.

The exporter builds its series from this table; the dashboards, alert rules
and tests import it, so a name exists exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


QUEUE_LABELS = ("queue", "channel")
WINDOWS = ("5m", "15m", "1h", "today")
ROLLING_WINDOW_SECONDS = {"5m": 300, "15m": 900, "1h": 3600}
OUTCOMES = ("answered", "abandoned", "short_abandoned", "callback", "transferred", "expired")

# Histogram bucket edges in seconds. Every configured service-level and
# short-abandon threshold is added to the wait buckets at start-up.
WAIT_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600)
HOLD_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800)
HANDLE_BUCKETS = (30, 60, 120, 180, 300, 420, 600, 900, 1200, 1800, 3600)
FIRST_RESPONSE_BUCKETS = (5, 10, 20, 30, 60, 120, 180, 300, 600, 1200)
PROCESSING_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    @property
    def sample_name(self) -> str:
        """The name prometheus_client expects for a family (counters without `_total`)."""
        return self.name.removesuffix("_total") if self.kind is Kind.COUNTER else self.name


def _q(name: str, kind: Kind, help_text: str, *extra: str) -> MetricSpec:
    return MetricSpec(name, kind, help_text, QUEUE_LABELS + extra)


def _w(name: str, help_text: str) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, help_text, QUEUE_LABELS + ("window",))


C, G, H = Kind.COUNTER, Kind.GAUGE, Kind.HISTOGRAM

# --- lifetime counters per queue and channel ---
CONTACTS_QUEUED = _q("callpulse_contacts_queued_total", C, "Contacts that entered the queue (a transfer into a queue is a new entry).")
CONTACTS_ANSWERED = _q("callpulse_contacts_answered_total", C, "Contacts answered by an agent from the queue.")
CONTACTS_ABANDONED = _q("callpulse_contacts_abandoned_total", C, "Contacts that left the queue before an answer, short abandons excluded.")
CONTACTS_SHORT_ABANDONED = _q("callpulse_contacts_short_abandoned_total", C, "Abandons whose wait was under the queue's short_abandon_seconds.")
CONTACTS_CALLBACK = _q("callpulse_contacts_callback_total", C, "Contacts that left the queue with a callback scheduled (not abandons).")
CONTACTS_TRANSFERRED = _q("callpulse_contacts_transferred_total", C, "Transfers by an agent, counted on the queue the contact was answered from.", "transfer_type")
HOLDS = _q("callpulse_holds_total", C, "Times an agent put a contact on hold.")
HOLD_ABANDONS = _q("callpulse_hold_abandons_total", C, "Contacts that ended while on hold.")
CONTACTS_EXPIRED = MetricSpec("callpulse_contacts_expired_total", C, "Contacts with no event for contact_expiry_seconds, removed from the current-state gauges.", QUEUE_LABELS)

# --- histograms per queue and channel ---
QUEUE_WAIT = _q("callpulse_queue_wait_seconds", H, "Time from the latest queue entry to answer or abandon.", "outcome")
HOLD_DURATION = _q("callpulse_hold_duration_seconds", H, "Duration of each hold.")
HANDLE_DURATION = _q("callpulse_handle_duration_seconds", H, "Handle time: answer to end of after-contact work.")
CHAT_FIRST_RESPONSE = _q("callpulse_chat_first_response_seconds", H, "Chat: answer to the agent's first message.")

# --- current state ---
QUEUE_WAITING = _q("callpulse_queue_waiting_contacts", G, "Contacts waiting in the queue now.")
QUEUE_OLDEST_WAIT = _q("callpulse_queue_oldest_wait_seconds", G, "Age of the longest-waiting contact at scrape time (0 when none waits).")
QUEUE_ON_HOLD = _q("callpulse_queue_on_hold_contacts", G, "Contacts answered from the queue that are on hold now.")
QUEUE_ACTIVE = _q("callpulse_queue_active_contacts", G, "Contacts answered from the queue that are connected to an agent now.")
QUEUE_ESTIMATED_WAIT = _q("callpulse_queue_estimated_wait_seconds", G, "Expected wait of a contact queued now (see README: estimated wait).")
AGENTS = MetricSpec("callpulse_agents", G, "Agents by state (sum over workers).", ("state",))

# --- event-time windows ---
WINDOW_QUEUED = _w("callpulse_window_contacts_queued", "Contacts queued in the window.")
WINDOW_ANSWERED = _w("callpulse_window_contacts_answered", "Contacts answered in the window (by answer time).")
WINDOW_ABANDONED = _w("callpulse_window_contacts_abandoned", "Abandons in the window (by leave time), short abandons excluded.")
WINDOW_SHORT_ABANDONED = _w("callpulse_window_contacts_short_abandoned", "Short abandons in the window.")
WINDOW_ABANDON_RATIO = _w("callpulse_window_abandon_ratio", "abandoned / (answered + abandoned), short abandons excluded.")
WINDOW_SERVICE_LEVEL = _w("callpulse_window_service_level_ratio", "answered within threshold / (answered + abandoned), short abandons excluded.")
WINDOW_ANSWER_WAIT = _w("callpulse_window_answer_wait_seconds", "Mean wait of answered contacts (ASA).")
WINDOW_HOLDS = _w("callpulse_window_holds", "Holds started in the window.")
WINDOW_HOLD_ABANDONS = _w("callpulse_window_hold_abandons", "Hold abandons in the window.")
WINDOW_AVERAGE_HOLD = _w("callpulse_window_average_hold_seconds", "Mean duration of holds that ended in the window.")
WINDOW_TRANSFERS = _w("callpulse_window_transfers", "Transfers in the window.")
WINDOW_TRANSFER_RATIO = _w("callpulse_window_transfer_ratio", "transfers / answered in the window.")
WINDOW_AVERAGE_HANDLE = _w("callpulse_window_average_handle_seconds", "Mean handle time of contacts whose wrap-up ended in the window.")

# --- targets from configuration ---
TARGET_SERVICE_LEVEL = _q("callpulse_queue_target_service_level_ratio", G, "Configured service-level target of the queue.")
SERVICE_LEVEL_THRESHOLD = _q("callpulse_queue_service_level_threshold_seconds", G, "Configured service-level answer threshold of the queue.")
TARGET_ABANDON = _q("callpulse_queue_target_abandon_ratio", G, "Configured maximum abandon ratio of the queue.")
TARGET_MAX_WAIT = _q("callpulse_queue_target_max_wait_seconds", G, "Configured maximum acceptable oldest wait of the queue.")

# --- pipeline health ---
EVENTS = MetricSpec("callpulse_events_total", C, "Valid input events processed, by type (duplicates excluded).", ("type",))
EVENTS_REJECTED = MetricSpec("callpulse_events_rejected_total", C, "Input messages sent to the dead-letter topic, by reason.", ("reason",))
EVENTS_DUPLICATE = MetricSpec("callpulse_events_duplicate_total", C, "Input events ignored because their event_id was already processed.")
EVENTS_LATE = MetricSpec("callpulse_events_late_total", C, "Events older than the longest rolling window (1h) at arrival: lifetime counters only.")
EVENT_TIME_LAG = MetricSpec("callpulse_event_time_lag_seconds", G, "Wall clock minus the newest processed event time.")
PROCESSING_LATENCY = MetricSpec("callpulse_processing_latency_seconds", H, "Time from receiving a message to its state being updated.")
CONSUMER_LAG = MetricSpec("callpulse_consumer_lag_messages", G, "Input messages this worker has not processed yet (partition end minus processed offset, over its partitions).")
TRACKED_CONTACTS = MetricSpec("callpulse_tracked_contacts", G, "Contacts held in state by this worker (in flight or kept for deduplication).")

CATALOGUE: tuple[MetricSpec, ...] = tuple(v for v in list(globals().values()) if isinstance(v, MetricSpec))
BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}


def wait_buckets(thresholds: set[float] | frozenset[float] = frozenset()) -> tuple[float, ...]:
    """Wait histogram edges: the defaults plus every configured threshold."""
    return tuple(sorted(set(map(float, WAIT_BUCKETS)) | {float(t) for t in thresholds if t > 0}))
