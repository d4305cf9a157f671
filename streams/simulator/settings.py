"""What the simulator is asked to generate: run settings and the queues' traffic profiles."""

from __future__ import annotations

from dataclasses import dataclass

from streams.contract.events import CHANNELS, MAX_OCCURRED_AT_MS, MIN_OCCURRED_AT_MS


@dataclass(frozen=True, kw_only=True)
class QueueProfile:
    """How one queue behaves: its share of the traffic, the work per contact and its staffing.

    `staffing_factor` is agents per Erlang of offered load once breaks and
    coaching sessions are accounted for: just above 1 keeps the queue healthy
    on average but lets bursts and sessions push it past its service-level
    target now and then.

        QueueProfile(name="claims", arrival_share=0.1, staffing_factor=1.05, patience_seconds=90)
    """

    name: str
    arrival_share: float
    staffing_factor: float
    channels: tuple[str, ...] = ("voice",)
    chat_share: float = 0.0
    talk_seconds: float = 240.0
    chat_seconds: float = 480.0
    wrapup_seconds: float = 30.0
    patience_seconds: float = 150.0
    hold_probability: float = 0.3
    transfer_probability: float = 0.08
    # Waiting voice customers are offered a callback after this long; None: no callbacks.
    callback_offer_seconds: float | None = None
    # Higher is served first by agents who have this queue among their skills.
    priority: int = 0
    # Queues a share of this queue's agents also serve (cross-skilling).
    cross_skills: tuple[str, ...] = ()
    cross_skill_share: float = 0.3

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("queue name must not be empty")
        if not self.channels or any(c not in CHANNELS for c in self.channels):
            raise ValueError(
                f"queue {self.name}: channels must be a non-empty subset of {CHANNELS}"
            )
        if self.arrival_share <= 0 or self.staffing_factor <= 0:
            raise ValueError(
                f"queue {self.name}: arrival_share and staffing_factor must be positive"
            )
        if not 0.0 <= self.chat_share <= 1.0:
            raise ValueError(f"queue {self.name}: chat_share must be within 0-1")
        if self.chat_share > 0 and "chat" not in self.channels:
            raise ValueError(f"queue {self.name}: chat_share > 0 needs the chat channel")
        if self.chat_share < 1 and "voice" not in self.channels:
            raise ValueError(f"queue {self.name}: a chat-only queue needs chat_share = 1")
        for name in ("hold_probability", "transfer_probability", "cross_skill_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"queue {self.name}: {name} must be within 0-1")
        for name in ("talk_seconds", "chat_seconds", "wrapup_seconds", "patience_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"queue {self.name}: {name} must be positive")


DEFAULT_QUEUES: tuple[QueueProfile, ...] = (
    QueueProfile(
        name="sales",
        arrival_share=0.24,
        staffing_factor=1.03,
        talk_seconds=210,
        patience_seconds=120,
        hold_probability=0.25,
        transfer_probability=0.06,
        callback_offer_seconds=20,
        cross_skills=("billing", "vip"),
    ),
    QueueProfile(
        name="support",
        arrival_share=0.30,
        staffing_factor=1.06,
        channels=("voice", "chat"),
        chat_share=0.35,
        talk_seconds=300,
        chat_seconds=480,
        patience_seconds=150,
        hold_probability=0.35,
        transfer_probability=0.10,
        callback_offer_seconds=15,
        cross_skills=("tech",),
    ),
    QueueProfile(
        name="billing",
        arrival_share=0.18,
        staffing_factor=1.04,
        talk_seconds=240,
        patience_seconds=120,
        hold_probability=0.30,
        transfer_probability=0.12,
        callback_offer_seconds=15,
        cross_skills=("sales",),
    ),
    QueueProfile(
        name="tech",
        arrival_share=0.20,
        staffing_factor=1.07,
        channels=("voice", "chat"),
        chat_share=0.5,
        talk_seconds=420,
        chat_seconds=600,
        patience_seconds=180,
        hold_probability=0.45,
        transfer_probability=0.10,
        cross_skills=("support",),
    ),
    # Small, dedicated and served first by the sales agents who also take VIP calls.
    QueueProfile(
        name="vip",
        arrival_share=0.08,
        staffing_factor=1.0,
        talk_seconds=300,
        patience_seconds=90,
        hold_probability=0.20,
        transfer_probability=0.05,
        priority=1,
    ),
)


@dataclass(frozen=True, kw_only=True)
class SimulationSettings:
    """One simulated run. Same settings, same bytes: the run depends on nothing else.

    `rate` is the target average of input events per second (all queues, agent
    events included, injected faults not); arrivals per queue follow from it.
    `start_ms` is the epoch time of simulated t=0 (use "now" to feed a live
    pipeline in real time). With `drain`, arrivals stop at `duration_seconds`
    but every contact still in progress runs to its end.

        SimulationSettings(start_ms=1_795_852_800_000, seed=7, rate=50, duration_seconds=300)
    """

    start_ms: int
    seed: int = 1
    rate: float = 20.0
    duration_seconds: float = 600.0
    queues: tuple[QueueProfile, ...] = DEFAULT_QUEUES
    drain: bool = False
    duplicate_ratio: float = 0.0
    reorder_ratio: float = 0.0
    reorder_max_skew_seconds: float = 5.0
    malformed_ratio: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "queues", tuple(self.queues))
        if isinstance(self.start_ms, bool) or not isinstance(self.start_ms, int):
            raise ValueError("start_ms must be integer epoch milliseconds")
        if not MIN_OCCURRED_AT_MS <= self.start_ms < MAX_OCCURRED_AT_MS:
            raise ValueError("start_ms must lie between 2000 and 2100")
        if self.rate <= 0:
            raise ValueError("rate must be positive (events per second)")
        if self.duration_seconds <= 0:
            raise ValueError("duration_seconds must be positive")
        for name in ("duplicate_ratio", "reorder_ratio", "malformed_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0-1")
        if self.reorder_max_skew_seconds < 0:
            raise ValueError("reorder_max_skew_seconds must not be negative")
        if not self.queues:
            raise ValueError("at least one queue is needed")
        names = [q.name for q in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        for queue in self.queues:
            unknown = set(queue.cross_skills) - set(names)
            if unknown:
                raise ValueError(
                    f"queue {queue.name}: cross_skills name unknown queues {sorted(unknown)}"
                )

    @property
    def duration_ms(self) -> int:
        return round(self.duration_seconds * 1000)
