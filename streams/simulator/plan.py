"""The traffic plan: arrivals and staffing per queue, derived from the requested event rate.

`rate` counts input events, but the model is driven by contact arrivals. The
plan estimates, per queue and channel, which events a contact produces and how
long after its arrival each one happens ("atoms": probability and offset), so
that the expected number of events inside the run's window matches
`rate * duration` even for short runs where late events of the last contacts
fall outside it. Agents are staffed from the offered load (Erlangs) times the
queue's `staffing_factor`, so the queues behave alike at any rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.simulator import behaviour as b
from streams.simulator.settings import QueueProfile, SimulationSettings

Atom = tuple[float, float]  # (expected count, seconds after the contact's arrival)


@dataclass(frozen=True, slots=True)
class QueuePlan:
    """What one queue gets: its arrivals and its agents (cross-skilled agents counted at home)."""

    name: str
    arrivals_per_second: float
    agents: int
    offered_erlangs: float
    handle_seconds: float
    events_per_contact: float
    # Mean delay of the shift-start log-ins: agents arrive as fast as work does, counting that
    # none of them is on a break yet.
    login_mean_seconds: float


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """The whole run's plan; `arrivals_per_second` is the long-run mean over all queues."""

    arrivals_per_second: float
    burst_normalisation: float
    queues: tuple[QueuePlan, ...]

    @property
    def agents(self) -> int:
        return sum(q.agents for q in self.queues)


def _mean(bounds: tuple[float, float]) -> float:
    return (bounds[0] + bounds[1]) / 2


def _shift(atoms: list[Atom], seconds: float, weight: float = 1.0) -> list[Atom]:
    return [(p * weight, offset + seconds) for p, offset in atoms]


def _transfer_split(channel: str, profile: QueueProfile) -> tuple[float, float, float]:
    """Probabilities of (blind, warm, external) transfers at the end of an answered leg."""
    probability = profile.transfer_probability * (
        b.CHAT_TRANSFER_FACTOR if channel == "chat" else 1.0
    )
    weights = dict(b.TRANSFER_TYPE_WEIGHTS[channel])
    total = sum(weights.values())
    return tuple(
        probability * weights.get(kind, 0.0) / total for kind in ("blind", "warm", "external")
    )


def expected_holds(profile: QueueProfile) -> float:
    return profile.hold_probability * (1 + b.SECOND_HOLD_PROBABILITY)


def handle_seconds(profile: QueueProfile, channel: str) -> float:
    """Mean agent time per answered leg: ringing, talk or chat, holds, consultation, wrap-up."""
    ring = _mean(b.RING_SECONDS[channel])
    if channel == "chat":
        return ring + profile.chat_seconds + profile.wrapup_seconds
    _, warm, _ = _transfer_split(channel, profile)
    return (
        ring
        + profile.talk_seconds
        + expected_holds(profile) * b.HOLD_MEAN_SECONDS
        + warm * _mean(b.CONSULT_SECONDS)
        + profile.wrapup_seconds
    )


def _answered_leg(profile: QueueProfile, channel: str, depth: int) -> list[Atom]:
    """Events of one answered leg after its contact.queued (offset 0 = enqueue)."""
    wait = b.NOMINAL_ANSWERED_WAIT_SECONDS
    wrapup = profile.wrapup_seconds
    atoms: list[Atom] = [(2.0, wait)]  # contact.answered, agent on_contact
    if channel == "chat":
        conversation = profile.chat_seconds
        messages = (
            2
            + max(
                0.0,
                conversation
                - _mean(b.CHAT_FIRST_MESSAGE_SECONDS)
                - b.CHAT_FIRST_RESPONSE_MEAN_SECONDS,
            )
            / b.CHAT_MESSAGE_GAP_MEAN_SECONDS
        )
        atoms += [(messages / 4, wait + conversation * (i + 0.5) / 4) for i in range(4)]
        end = wait + conversation
    else:
        holds = expected_holds(profile)
        atoms.append((2 * holds, wait + profile.talk_seconds / 2))
        end = wait + profile.talk_seconds + holds * b.HOLD_MEAN_SECONDS
    blind, warm, external = (
        _transfer_split(channel, profile) if depth < b.MAX_TRANSFERS else (0, 0, 0)
    )
    stay = 1 - blind - warm - external
    # ended, agent after_contact_work, wrapup_ended, agent available
    atoms += [(2 * stay, end), (2 * stay, end + wrapup)]
    handoff = _mean(b.EXTERNAL_HANDOFF_SECONDS)
    atoms += [
        (external, end),
        (2 * external, end + handoff),
        (2 * external, end + handoff + wrapup),
    ]
    requeued = blind + warm
    if requeued:
        consult = _mean(b.CONSULT_SECONDS)
        atoms += [
            (2 * warm, end),
            (2 * requeued, end + warm / requeued * consult),
            (requeued, end + wrapup),
        ]
        start = end + warm / requeued * consult + _mean(b.REQUEUE_DELAY_SECONDS)
        next_leg = _shift(_answered_leg(profile, channel, depth + 1), start, requeued)
        atoms += [(requeued, start), *next_leg]
    return atoms


def contact_atoms(profile: QueueProfile, channel: str) -> list[Atom]:
    """Every event one arriving contact is expected to cause, contact and agent events alike."""
    abandon = b.NOMINAL_ABANDON_PROBABILITY
    callback = (
        b.NOMINAL_CALLBACK_PROBABILITY
        if channel == "voice" and profile.callback_offer_seconds is not None
        else 0.0
    )
    leg = _answered_leg(profile, channel, 0)
    atoms: list[Atom] = [(1.0, 0.0), (abandon, b.NOMINAL_ABANDON_WAIT_SECONDS)]
    atoms += _shift(leg, 0.0, 1 - abandon - callback)
    if callback:
        left_at = profile.callback_offer_seconds + _mean(b.CALLBACK_REACTION_SECONDS)
        requeued_at = left_at + _mean(b.CALLBACK_DELAY_SECONDS)
        atoms += [(callback, left_at), (callback, requeued_at), *_shift(leg, requeued_at, callback)]
    return atoms


def _channel_mix(profile: QueueProfile) -> list[tuple[str, float]]:
    return [
        (c, s)
        for c, s in (("voice", 1 - profile.chat_share), ("chat", profile.chat_share))
        if s > 0
    ]


def agent_events_per_agent(duration_seconds: float, login_mean_seconds: float) -> float:
    """State changes no contact causes: the state at t=0, a late log-in, breaks, a log-out.

    A break mostly starts when a wrap-up ends, where "unavailable" replaces the
    "available" the contact's atoms already count, so it adds one event, not two.
    """
    break_cycle = b.BREAK_INTERVAL_MEAN_SECONDS + _mean(b.BREAK_SECONDS)
    late_login = 1 - b.SHIFT_START_LOGGED_IN_SHARE - b.INITIAL_BREAK_PROBABILITY
    logged_in_by_end = 1 - math.exp(-duration_seconds / login_mean_seconds)
    logged_in_seconds = max(0.0, duration_seconds - late_login * login_mean_seconds)
    return (
        1
        + late_login * logged_in_by_end
        + b.INITIAL_BREAK_PROBABILITY
        + b.LOGOUT_PROBABILITY
        + logged_in_seconds / break_cycle
    )


def break_shrinkage(queue_count: int) -> float:
    """The share of agents on a break or in a meeting at any moment."""
    breaks = _mean(b.BREAK_SECONDS) / (b.BREAK_INTERVAL_MEAN_SECONDS + _mean(b.BREAK_SECONDS))
    meeting_interval_seconds = b.INCIDENT_EVERY_SECONDS * queue_count / b.MEETING_PROBABILITY
    meetings = _mean(b.MEETING_AGENT_SHARE) * _mean(b.MEETING_SECONDS) / meeting_interval_seconds
    return breaks + meetings


def burst_normalisation(queue_count: int) -> float:
    """Long-run mean of a queue's burst multiplier; base rates are divided by it."""
    burst_interval_seconds = b.INCIDENT_EVERY_SECONDS * queue_count / (1 - b.MEETING_PROBABILITY)
    return 1 + _mean(b.BURST_SECONDS) / burst_interval_seconds * (_mean(b.BURST_MULTIPLIER) - 1)


def meeting_events_per_agent(duration_seconds: float, queue_count: int) -> float:
    """A meeting adds about one state change per attendee (like a break after a wrap-up)."""
    meeting_interval_seconds = b.INCIDENT_EVERY_SECONDS * queue_count / b.MEETING_PROBABILITY
    return _mean(b.MEETING_AGENT_SHARE) * duration_seconds / meeting_interval_seconds


def plan_traffic(settings: SimulationSettings) -> TrafficPlan:
    """Arrival rate per queue and agents per queue for `settings`."""
    duration_seconds = settings.duration_seconds
    total_share = sum(q.arrival_share for q in settings.queues)
    shares = [q.arrival_share / total_share for q in settings.queues]
    queue_count = len(settings.queues)
    staffing = 1 - break_shrinkage(queue_count)

    # Per unit of total arrival rate: events inside the window, agents needed.
    events_per_unit = 0.0
    per_queue = []
    for profile, share in zip(settings.queues, shares, strict=True):
        in_window = per_contact = agent_seconds = 0.0
        for channel, channel_share in _channel_mix(profile):
            atoms = contact_atoms(profile, channel)
            in_window += channel_share * sum(p * max(0.0, duration_seconds - o) for p, o in atoms)
            per_contact += channel_share * sum(p for p, _ in atoms)
            agent_seconds += channel_share * handle_seconds(profile, channel)
        agent_seconds *= 1 - b.NOMINAL_ABANDON_PROBABILITY
        agents_per_unit = share * agent_seconds * profile.staffing_factor / staffing
        events_per_unit += share * in_window
        events_per_unit += agents_per_unit * (
            agent_events_per_agent(duration_seconds, agent_seconds / staffing)
            + meeting_events_per_agent(duration_seconds, queue_count)
        )
        per_queue.append((profile, share, per_contact, agent_seconds))
    arrivals_per_second = settings.rate * duration_seconds / events_per_unit

    queues = []
    for profile, share, per_contact, agent_seconds in per_queue:
        arrivals = arrivals_per_second * share
        erlangs = arrivals * agent_seconds
        agents = max(
            b.MIN_AGENTS_PER_QUEUE, math.ceil(erlangs * profile.staffing_factor / staffing)
        )
        queues.append(
            QueuePlan(
                profile.name,
                arrivals,
                agents,
                erlangs,
                agent_seconds,
                per_contact,
                agent_seconds / staffing,
            )
        )
    return TrafficPlan(arrivals_per_second, burst_normalisation(queue_count), tuple(queues))
