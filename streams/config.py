"""The YAML configuration file: time zone, per-queue targets and processing limits.

Every key is validated; an invalid file stops start-up with a message naming
the field (`ConfigError`). Queue settings resolve as: the queue's override, else
`defaults`, else the built-in default below.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

def _number(value: object) -> object:
    """YAML numbers only: `true` or "20" where a number belongs is a mistake, not 1.0 or 20."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_number)]
Ratio = Annotated[Number, Field(ge=0.0, le=1.0)]
PositiveSeconds = Annotated[Number, Field(gt=0.0)]
NonNegativeSeconds = Annotated[Number, Field(ge=0.0)]


class ConfigError(ValueError):
    """The configuration file is unreadable or breaks a rule; the message names the field."""


class QueueTargets(BaseModel):
    """The targets and thresholds one queue is measured against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_level_threshold_seconds: PositiveSeconds = 20.0
    short_abandon_seconds: NonNegativeSeconds = 5.0
    target_service_level_ratio: Ratio = 0.8
    target_abandon_ratio: Ratio = 0.05
    target_max_wait_seconds: PositiveSeconds = 120.0


class QueueOverrides(BaseModel):
    """Per-queue overrides: any subset of QueueTargets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_level_threshold_seconds: PositiveSeconds | None = None
    short_abandon_seconds: NonNegativeSeconds | None = None
    target_service_level_ratio: Ratio | None = None
    target_abandon_ratio: Ratio | None = None
    target_max_wait_seconds: PositiveSeconds | None = None


class ProcessingSettings(BaseModel):
    """How the stream copes with disorder, duplicates, late and stuck contacts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Events of one contact may arrive this much out of event-time order and
    # still give the in-order result; outcomes are final this long after they happen.
    reorder_skew_seconds: NonNegativeSeconds = 30.0
    # A contact with no event for this long is expired (leaves the waiting/on-hold gauges).
    contact_expiry_seconds: PositiveSeconds = 4 * 3600.0
    # Event ids of finished contacts are kept this long (event time) to drop late duplicates.
    dedupe_retention_seconds: PositiveSeconds = 2 * 3600.0
    # An ended contact waits this long for contact.wrapup_ended before it is done without handle time.
    wrapup_timeout_seconds: PositiveSeconds = 1800.0
    # How often (seconds) a snapshot per queue goes to callpulse.queue-stats.
    queue_stats_interval_seconds: PositiveSeconds = 15.0


class CallpulseConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    defaults: QueueTargets = QueueTargets()
    queues: dict[str, QueueOverrides] = {}
    processing: ProcessingSettings = ProcessingSettings()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def targets_for(self, queue: str) -> QueueTargets:
        """The effective targets of `queue` (override over defaults)."""
        override = self.queues.get(queue)
        if override is None:
            return self.defaults
        changes = override.model_dump(exclude_none=True)
        return self.defaults.model_copy(update=changes) if changes else self.defaults

    def service_level_thresholds(self) -> set[float]:
        """Every configured service-level threshold (histogram bucket edges must include them)."""
        return {self.defaults.service_level_threshold_seconds} | {
            q.service_level_threshold_seconds
            for q in self.queues.values()
            if q.service_level_threshold_seconds is not None
        }

    def short_abandon_thresholds(self) -> set[float]:
        return {self.defaults.short_abandon_seconds} | {
            q.short_abandon_seconds for q in self.queues.values() if q.short_abandon_seconds is not None
        }


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_config(data: object, source: str = "configuration") -> CallpulseConfig:
    """Validate decoded YAML; raise ConfigError naming every bad field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return CallpulseConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = _field_path(error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{field}: {message}")
        raise ConfigError(f"{source}: invalid configuration: " + "; ".join(problems)) from None


def load_config(path: str | Path | None) -> CallpulseConfig:
    """Read the YAML file at `path`; no path means all defaults."""
    if not path:
        return CallpulseConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))
