"""The thresholds that colour the wall screen and fire the alerts: one definition for both.

Per-queue targets are exported by the worker as gauges and the alert rules join
on them, so a target change in the YAML configuration needs no rule edit.
Grafana's static colour steps cannot follow a per-queue value, so the dashboards
colour with the configuration's built-in defaults (`QueueTargets()`); a queue
with an override is coloured against the default while its alert uses its own
target. The remaining thresholds have no per-queue target and are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from streams.config import QueueTargets
from streams.metrics import catalogue
from streams.metrics.catalogue import MetricSpec

_DEFAULTS = QueueTargets()


class Breach(str, Enum):
    """Which side of a threshold is bad."""

    BELOW = "below"
    ABOVE = "above"


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """A per-queue target: the gauge the alerts join on and the default the wall screen colours with."""

    metric: MetricSpec
    default: float
    breach: Breach

    @property
    def alert_operator(self) -> str:
        """PromQL comparison that keeps the breaching series (the target value itself is fine)."""
        return "<" if self.breach is Breach.BELOW else ">"


SERVICE_LEVEL = QueueTarget(catalogue.TARGET_SERVICE_LEVEL, _DEFAULTS.target_service_level_ratio, Breach.BELOW)
ABANDON_RATIO = QueueTarget(catalogue.TARGET_ABANDON, _DEFAULTS.target_abandon_ratio, Breach.ABOVE)
MAX_WAIT = QueueTarget(catalogue.TARGET_MAX_WAIT, _DEFAULTS.target_max_wait_seconds, Breach.ABOVE)
# A contact waiting longer than the service-level threshold already misses the
# service level: the wall screen turns its oldest wait amber there.
SERVICE_LEVEL_THRESHOLD = QueueTarget(
    catalogue.SERVICE_LEVEL_THRESHOLD, _DEFAULTS.service_level_threshold_seconds, Breach.ABOVE
)

# The window the service-level and abandon alerts (and the wall screen) judge.
ALERT_WINDOW = "5m"
# Ratios over a handful of contacts swing wildly (1 of 2 missed is 50 %): the
# ratio alerts wait for this many decided contacts (answered + abandoned) in the window.
MIN_DECIDED_CONTACTS = 5

# Contacts waiting while fewer agents than this are available (over all workers).
MIN_AVAILABLE_AGENTS = 1

# Hold abandons: no configured target exists, so a spike is this many hold
# abandons in the window making up more than this share of the holds started.
HOLD_ABANDON_WINDOW = "15m"
HOLD_ABANDON_MIN_COUNT = 3
HOLD_ABANDON_MAX_RATIO = 0.1

# A worker whose newest processed event is older than this is stalled.
MAX_EVENT_TIME_LAG_SECONDS = 300.0

# Rejections measured over this window; any sustained rate above zero is reported.
REJECTED_RATE_WINDOW = "5m"

# At least this many workers must be scraped successfully.
MIN_WORKERS_UP = 1
