"""The contact-center model: a discrete-event simulation of customers, queues and agents.

Driven only by `random.Random(seed)` and simulated time, so a run is a pure
function of its settings. It yields v1 events in event-time order with
`occurred_at` still in epoch milliseconds; encoding them and injecting faults
is the emission layer's job.

Each contact is a small state machine (queued -> ringing -> connected <-> on
hold -> wrap-up), each agent another (offline, idle, reserved, on contact,
after-contact work, break), and every event is emitted by the transition
that causes it, so contact and agent events always agree.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from itertools import count
from random import Random

from streams.contract.events import (
    AGENT_STATE_CHANGED,
    CHAT_MESSAGE,
    CONTACT_ABANDONED,
    CONTACT_ANSWERED,
    CONTACT_CALLBACK_REQUESTED,
    CONTACT_ENDED,
    CONTACT_HOLD_ENDED,
    CONTACT_HOLD_STARTED,
    CONTACT_QUEUED,
    CONTACT_TRANSFERRED,
    CONTACT_WRAPUP_ENDED,
)
from streams.simulator import behaviour as b
from streams.simulator.plan import TrafficPlan, plan_traffic
from streams.simulator.settings import QueueProfile, SimulationSettings

# (occurred_at epoch ms, message key, v1 event dict whose occurred_at is still epoch ms)
RawEvent = tuple[int, str, dict]

# Contact phases.
_QUEUED, _CONNECTED, _ON_HOLD, _TRANSFERRING, _WRAPUP, _DONE = range(6)
# Agent activities (finer than the reported states: a reserved agent still reports "available").
_OFFLINE, _IDLE, _RESERVED, _ON_CONTACT, _AFTER_CONTACT, _BREAK = range(6)

# A drained run that has not finished this long after arrivals stopped has a contact stuck in it.
_DRAIN_LIMIT_MS = 24 * 3600 * 1000


class _Queue:
    __slots__ = (
        "base_multiplier",
        "burst_index",
        "bursts",
        "candidate_rate_per_second",
        "home_agents",
        "idle",
        "name",
        "peak_multiplier",
        "priority",
        "profile",
        "swing_period_ms",
        "swing_phase",
        "waiting",
    )

    def __init__(self, profile: QueueProfile) -> None:
        self.profile = profile
        self.name = profile.name
        self.priority = profile.priority
        # (contact, token) in arrival order; entries of contacts that left are skipped lazily.
        self.waiting: deque[tuple[_Contact, int]] = deque()
        # Idle agents who serve this queue, longest idle first.
        self.idle: OrderedDict[str, _Agent] = OrderedDict()
        self.bursts: list[tuple[float, float, float]] = []  # (start ms, end ms, arrival multiplier)
        self.burst_index = 0
        self.home_agents: list[_Agent] = []


class _Contact:
    __slots__ = (
        "agent",
        "agent_replied",
        "channel",
        "contact_id",
        "enqueued_ms",
        "events",
        "phase",
        "previous_contact_id",
        "queue",
        "steps",
        "talk_end_ms",
        "token",
        "transfer",
        "transfers",
    )

    def __init__(
        self, contact_id: str, channel: str, previous_contact_id: str | None = None
    ) -> None:
        self.contact_id = contact_id
        self.channel = channel
        self.queue: _Queue | None = None
        self.phase = _QUEUED
        self.token = 0  # bumped on every enqueue so timers of an earlier queue stay inert
        self.enqueued_ms = 0
        self.agent: _Agent | None = None
        self.transfers = 0
        self.events = 0
        self.steps: deque[tuple[float, float | None]] = deque()
        self.transfer: tuple[str, _Queue | None] | None = None
        self.talk_end_ms = 0
        self.agent_replied = False
        self.previous_contact_id = previous_contact_id


class _Agent:
    __slots__ = (
        "activity",
        "agent_id",
        "break_due",
        "break_timer",
        "contact",
        "events",
        "logout_due",
        "meeting_seconds",
        "queues",
        "skills",
        "state",
    )

    def __init__(self, agent_id: str, queues: list[_Queue]) -> None:
        self.agent_id = agent_id
        self.skills = [q.name for q in queues]
        self.queues = sorted(queues, key=lambda q: -q.priority)  # stable: home queue first
        self.activity = _OFFLINE
        self.state: str | None = None
        self.contact: _Contact | None = None
        self.break_due = False
        self.logout_due = False
        self.events = 0
        self.break_timer = 0  # only the latest scheduled break timer counts
        self.meeting_seconds = 0.0  # a meeting the agent joins once free


class ContactCenterModel:
    """Simulate `settings`; iterate `events()` once for the run's v1 events in event-time order.

    model = ContactCenterModel(SimulationSettings(start_ms=start_ms, seed=3))
    for occurred_at_ms, key, event in model.events():
        ...
    """

    def __init__(self, settings: SimulationSettings, plan: TrafficPlan | None = None) -> None:
        self.settings = settings
        self.plan = plan or plan_traffic(settings)
        self._rng = Random(settings.seed)
        self._seed = settings.seed
        self._start_ms = settings.start_ms
        self._end_ms = settings.duration_ms
        self._now_ms = 0
        self._abs_ms = settings.start_ms
        self._heap: list[tuple[int, int, Callable, object]] = []
        self._sequence = count()
        self._out: list[RawEvent] = []
        self._open_contacts = 0  # contacts not yet finished, scheduled callbacks included
        self._contacts_created = 0
        self._queues = [_Queue(p) for p in settings.queues]
        self._queues_by_name = {q.name: q for q in self._queues}
        self._agents: list[_Agent] = []
        self._started = False

    # -- scheduling -------------------------------------------------------------------

    def _after(self, seconds: float, handler: Callable, arg: object) -> None:
        delay_ms = max(1, round(seconds * 1000))
        heapq.heappush(self._heap, (self._now_ms + delay_ms, next(self._sequence), handler, arg))

    def events(self) -> Iterator[RawEvent]:
        """Run the simulation, yielding each event as it happens."""
        if self._started:
            raise RuntimeError("a ContactCenterModel runs once; create a new one")
        self._started = True
        out = self._out
        self._start()
        yield from out
        out.clear()
        heap = self._heap
        heappop = heapq.heappop
        end_ms = self._end_ms
        drain = self.settings.drain
        start_ms = self._start_ms
        while heap:
            if heap[0][0] > end_ms and not drain:
                break
            now_ms, _, handler, arg = heappop(heap)
            self._now_ms = now_ms
            self._abs_ms = start_ms + now_ms
            handler(arg)
            if out:
                yield from out
                out.clear()
            if drain and now_ms >= end_ms:
                if self._open_contacts == 0:
                    break
                if now_ms > end_ms + _DRAIN_LIMIT_MS:
                    raise RuntimeError(f"{self._open_contacts} contacts never finished")

    # -- setup ---------------------------------------------------------------------------

    def _start(self) -> None:
        rng = self._rng
        duration_seconds = self.settings.duration_seconds
        for queue, queue_plan in zip(self._queues, self.plan.queues, strict=True):
            profile = queue.profile
            for _ in range(queue_plan.agents):
                skills = [queue]
                if profile.cross_skills and rng.random() < profile.cross_skill_share:
                    skills += [self._queues_by_name[name] for name in profile.cross_skills]
                agent = _Agent(f"a-{len(self._agents) + 1}", skills)
                self._agents.append(agent)
                queue.home_agents.append(agent)
            self._start_arrivals(queue, queue_plan.arrivals_per_second)
        self._schedule_incidents()

        login_mean_seconds = {q.name: q.login_mean_seconds for q in self.plan.queues}
        for agent in self._agents:
            draw = rng.random()
            if draw < b.INITIAL_BREAK_PROBABILITY:
                agent.activity = _BREAK
                self._report(agent, "unavailable")
                self._after(rng.uniform(*b.INITIAL_BREAK_SECONDS), self._break_end, (agent, True))
            elif draw < b.INITIAL_BREAK_PROBABILITY + b.SHIFT_START_LOGGED_IN_SHARE:
                self._schedule_break(agent)
                self._agent_free(agent)
            else:
                self._report(agent, "offline")
                self._after(
                    rng.expovariate(1 / login_mean_seconds[agent.skills[0]]), self._login, agent
                )
            if rng.random() < b.LOGOUT_PROBABILITY:
                self._after(rng.uniform(0.3, 0.95) * duration_seconds, self._logout, agent)

    def _start_arrivals(self, queue: _Queue, arrivals_per_second: float) -> None:
        """Poisson arrivals with a time-varying rate (slow wave, bursts), drawn by thinning."""
        rng = self._rng
        queue.swing_period_ms = rng.uniform(*b.SWING_PERIOD_SECONDS) * 1000
        queue.swing_phase = rng.uniform(0, 2 * math.pi)
        queue.base_multiplier = 1 / self.plan.burst_normalisation
        queue.peak_multiplier = (
            (1 + b.SWING_AMPLITUDE) * b.BURST_MULTIPLIER[1] * queue.base_multiplier
        )
        queue.candidate_rate_per_second = arrivals_per_second * queue.peak_multiplier
        self._after(rng.expovariate(queue.candidate_rate_per_second), self._arrival, queue)

    def _schedule_incidents(self) -> None:
        """One incident per slot, at a random moment; each queue gets one per round of slots."""
        rng = self._rng
        slot_ms = b.INCIDENT_EVERY_SECONDS * 1000
        turns: list[_Queue] = []
        for slot in range(math.ceil(self._end_ms / slot_ms)):
            if not turns:
                turns = list(self._queues)
                rng.shuffle(turns)
            queue = turns.pop()
            start_ms = (slot + rng.random()) * slot_ms
            if rng.random() < b.MEETING_PROBABILITY:
                meeting_seconds = rng.uniform(*b.MEETING_SECONDS)
                share = rng.uniform(*b.MEETING_AGENT_SHARE)
                self._after(start_ms / 1000, self._meeting_starts, (queue, share, meeting_seconds))
            else:
                length_ms = rng.uniform(*b.BURST_SECONDS) * 1000
                queue.bursts.append(
                    (start_ms, start_ms + length_ms, rng.uniform(*b.BURST_MULTIPLIER))
                )

    def _rate_multiplier(self, queue: _Queue) -> float:
        now_ms = self._now_ms
        multiplier = queue.base_multiplier * (
            1
            + b.SWING_AMPLITUDE
            * math.sin(2 * math.pi * now_ms / queue.swing_period_ms + queue.swing_phase)
        )
        bursts = queue.bursts
        while queue.burst_index < len(bursts) and bursts[queue.burst_index][1] <= now_ms:
            queue.burst_index += 1
        if queue.burst_index < len(bursts) and bursts[queue.burst_index][0] <= now_ms:
            multiplier *= bursts[queue.burst_index][2]
        return multiplier

    # -- event construction ----------------------------------------------------------------

    def _contact_event(self, contact: _Contact, event_type: str, extra: dict | None = None) -> None:
        contact.events += 1
        event = {
            "event_id": f"{contact.contact_id}-{contact.events}",
            "type": event_type,
            "occurred_at": self._abs_ms,
            "contact_id": contact.contact_id,
        }
        if extra:
            event.update(extra)
        self._out.append((self._abs_ms, contact.contact_id, event))

    def _report(self, agent: _Agent, state: str) -> None:
        """Emit agent.state_changed when the reported state really changes."""
        if agent.state == state:
            return
        agent.state = state
        agent.events += 1
        event = {
            "event_id": f"{agent.agent_id}-s{self._seed}-{agent.events}",
            "type": AGENT_STATE_CHANGED,
            "occurred_at": self._abs_ms,
            "agent_id": agent.agent_id,
            "state": state,
            "queues": list(agent.skills),
        }
        self._out.append((self._abs_ms, agent.agent_id, event))

    # -- customers in queues ----------------------------------------------------------------

    def _arrival(self, queue: _Queue) -> None:
        if self._now_ms >= self._end_ms:
            return
        rng = self._rng
        if rng.random() * queue.peak_multiplier < self._rate_multiplier(queue):
            chat_share = queue.profile.chat_share
            channel = "chat" if chat_share and rng.random() < chat_share else "voice"
            self._contacts_created += 1
            contact = _Contact(f"c-{self._seed}-{self._contacts_created}", channel)
            self._open_contacts += 1
            self._enqueue(contact, queue)
        self._after(rng.expovariate(queue.candidate_rate_per_second), self._arrival, queue)

    def _enqueue(self, contact: _Contact, queue: _Queue) -> None:
        rng = self._rng
        profile = queue.profile
        first_entry = contact.token == 0
        contact.queue = queue
        contact.phase = _QUEUED
        contact.token += 1
        contact.enqueued_ms = self._now_ms
        contact.agent = None
        extra = {"queue": queue.name, "channel": contact.channel}
        if contact.previous_contact_id is not None and first_entry:
            extra["previous_contact_id"] = contact.previous_contact_id
        self._contact_event(contact, CONTACT_QUEUED, extra)

        patience_seconds = math.inf  # a scheduled callback does not abandon
        callback_seconds = math.inf
        if contact.previous_contact_id is None:
            if first_entry and rng.random() < b.SHORT_PATIENCE_PROBABILITY:
                patience_seconds = rng.uniform(*b.SHORT_PATIENCE_SECONDS)
            else:
                mean_seconds = profile.patience_seconds * (
                    1 if first_entry else b.REQUEUE_PATIENCE_FACTOR
                )
                patience_seconds = max(b.MIN_STEP_SECONDS, rng.expovariate(1 / mean_seconds))
            if (
                contact.channel == "voice"
                and profile.callback_offer_seconds is not None
                and rng.random() < b.CALLBACK_ACCEPT_PROBABILITY
            ):
                callback_seconds = profile.callback_offer_seconds + rng.uniform(
                    *b.CALLBACK_REACTION_SECONDS
                )

        agent = self._take_idle_agent(queue)
        if agent is None:
            queue.waiting.append((contact, contact.token))
            ring_seconds = math.inf
        else:
            ring_seconds = self._offer(agent, contact)
        # Timers only for what can still happen: most contacts are answered before either.
        if patience_seconds < ring_seconds:
            self._after(patience_seconds, self._patience_expired, (contact, contact.token))
        if callback_seconds < ring_seconds:
            self._after(callback_seconds, self._callback_chosen, (contact, contact.token))

    def _still_waiting(self, contact: _Contact, token: int) -> bool:
        return contact.phase == _QUEUED and contact.token == token

    def _patience_expired(self, arg: tuple[_Contact, int]) -> None:
        contact, token = arg
        if not self._still_waiting(contact, token):
            return
        if self._rng.random() < b.ABANDON_AS_ENDED_PROBABILITY:
            self._contact_event(contact, CONTACT_ENDED, {"disconnected_by": "customer"})
        else:
            self._contact_event(contact, CONTACT_ABANDONED)
        self._finish_contact(contact)
        agent = contact.agent
        if agent is not None:  # it was ringing: the agent is free again
            contact.agent = None
            agent.contact = None
            self._agent_free(agent)

    def _callback_chosen(self, arg: tuple[_Contact, int]) -> None:
        contact, token = arg
        if not self._still_waiting(contact, token) or contact.agent is not None:
            return
        self._contact_event(contact, CONTACT_CALLBACK_REQUESTED)
        self._finish_contact(contact)
        self._open_contacts += 1  # the callback to come
        self._after(self._rng.uniform(*b.CALLBACK_DELAY_SECONDS), self._callback_due, contact)

    def _callback_due(self, original: _Contact) -> None:
        """The scheduled callback enters the queue as a new contact."""
        self._contacts_created += 1
        contact = _Contact(
            f"c-{self._seed}-{self._contacts_created}", original.channel, original.contact_id
        )
        self._enqueue(contact, original.queue)

    def _finish_contact(self, contact: _Contact) -> None:
        contact.phase = _DONE
        self._open_contacts -= 1

    # -- routing ------------------------------------------------------------------------------

    def _take_idle_agent(self, queue: _Queue) -> _Agent | None:
        if not queue.idle:
            return None
        agent_id, agent = queue.idle.popitem(last=False)
        for other in agent.queues:
            if other is not queue:
                other.idle.pop(agent_id, None)
        return agent

    def _leave_idle_pools(self, agent: _Agent) -> None:
        for queue in agent.queues:
            queue.idle.pop(agent.agent_id, None)

    def _next_waiting(self, agent: _Agent) -> _Contact | None:
        """The contact an agent takes next: highest-priority queue first, then longest waiting."""
        best: tuple[_Contact, _Queue] | None = None
        for queue in agent.queues:
            waiting = queue.waiting
            while waiting:
                contact, token = waiting[0]
                if contact.token == token and contact.phase == _QUEUED and contact.agent is None:
                    break
                waiting.popleft()
            if not waiting:
                continue
            contact = waiting[0][0]
            if best is None or (
                queue.priority == best[1].priority and contact.enqueued_ms < best[0].enqueued_ms
            ):
                best = (contact, queue)
        if best is None:
            return None
        best[1].waiting.popleft()
        return best[0]

    def _offer(self, agent: _Agent, contact: _Contact) -> float:
        """Ring the agent; return the seconds until the contact is answered."""
        agent.activity = _RESERVED
        agent.contact = contact
        contact.agent = agent
        ring_seconds = self._rng.uniform(*b.RING_SECONDS[contact.channel])
        self._after(ring_seconds, self._answer, (contact, contact.token))
        return ring_seconds

    def _agent_free(self, agent: _Agent) -> None:
        """The agent is free: log out, go to a due meeting or break, else take or await work."""
        if agent.logout_due:
            agent.logout_due = False
            agent.activity = _OFFLINE
            self._report(agent, "offline")
            return
        if agent.meeting_seconds:
            meeting_seconds, agent.meeting_seconds = agent.meeting_seconds, 0.0
            self._start_break(agent, meeting_seconds, regular=False)
            return
        if agent.break_due:
            self._start_break(agent, self._rng.uniform(*b.BREAK_SECONDS), regular=True)
            return
        self._report(agent, "available")
        contact = self._next_waiting(agent)
        if contact is not None:
            self._offer(agent, contact)
            return
        agent.activity = _IDLE
        for queue in agent.queues:
            queue.idle[agent.agent_id] = agent

    # -- conversations --------------------------------------------------------------------------

    def _answer(self, arg: tuple[_Contact, int]) -> None:
        contact, token = arg
        agent = contact.agent
        if not self._still_waiting(contact, token) or agent is None:
            return
        contact.phase = _CONNECTED
        agent.activity = _ON_CONTACT
        self._contact_event(contact, CONTACT_ANSWERED, {"agent_id": agent.agent_id})
        self._report(agent, "on_contact")
        contact.transfer = self._draw_transfer(contact)
        if contact.channel == "chat":
            self._start_chat(contact)
        else:
            self._start_call(contact)

    def _draw_transfer(self, contact: _Contact) -> tuple[str, _Queue | None] | None:
        rng = self._rng
        profile = contact.queue.profile
        probability = profile.transfer_probability
        if contact.channel == "chat":
            probability *= b.CHAT_TRANSFER_FACTOR
        if contact.transfers >= b.MAX_TRANSFERS or rng.random() >= probability:
            return None
        kinds = b.TRANSFER_TYPE_WEIGHTS[contact.channel]
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        if kind == "external":
            return kind, None
        targets = [
            q
            for q in self._queues
            if q is not contact.queue and contact.channel in q.profile.channels
        ]
        if not targets:
            return None
        return kind, rng.choice(targets)

    def _start_call(self, contact: _Contact) -> None:
        """Plan the call: talk split by holds, a consultation hold before a warm transfer."""
        rng = self._rng
        profile = contact.queue.profile
        talk_seconds = max(
            b.MIN_TALK_SECONDS,
            rng.gammavariate(b.TALK_GAMMA_SHAPE, profile.talk_seconds / b.TALK_GAMMA_SHAPE),
        )
        holds = 0
        if rng.random() < profile.hold_probability:
            holds = 2 if rng.random() < b.SECOND_HOLD_PROBABILITY else 1
        cuts = sorted(rng.random() for _ in range(holds))
        steps = contact.steps
        steps.clear()
        previous = 0.0
        for cut in cuts:
            hold_seconds = max(b.MIN_HOLD_SECONDS, rng.expovariate(1 / b.HOLD_MEAN_SECONDS))
            steps.append((talk_seconds * (cut - previous), hold_seconds))
            previous = cut
        last_talk_seconds = talk_seconds * (1 - previous)
        if contact.transfer is not None and contact.transfer[0] == "warm":
            steps.append((last_talk_seconds, rng.uniform(*b.CONSULT_SECONDS)))
            steps.append((rng.uniform(0.5, 2.0), None))
        else:
            steps.append((last_talk_seconds, None))
        self._next_step(contact)

    def _next_step(self, contact: _Contact) -> None:
        gap_seconds, hold_seconds = contact.steps.popleft()
        gap_seconds = max(b.MIN_STEP_SECONDS, gap_seconds)
        if hold_seconds is None:
            self._after(gap_seconds, self._conversation_over, contact)
        else:
            self._after(gap_seconds, self._hold_start, (contact, hold_seconds))

    def _hold_start(self, arg: tuple[_Contact, float]) -> None:
        contact, hold_seconds = arg
        contact.phase = _ON_HOLD
        self._contact_event(contact, CONTACT_HOLD_STARTED)
        patience_seconds = self._rng.expovariate(1 / b.HOLD_PATIENCE_MEAN_SECONDS)
        if patience_seconds < hold_seconds:
            self._after(max(b.MIN_STEP_SECONDS, patience_seconds), self._hung_up_on_hold, contact)
        else:
            self._after(hold_seconds, self._hold_end, contact)

    def _hold_end(self, contact: _Contact) -> None:
        contact.phase = _CONNECTED
        self._contact_event(contact, CONTACT_HOLD_ENDED)
        self._next_step(contact)

    def _hung_up_on_hold(self, contact: _Contact) -> None:
        self._end_conversation(contact, "customer")

    def _start_chat(self, contact: _Contact) -> None:
        rng = self._rng
        chat_seconds = max(
            b.MIN_TALK_SECONDS,
            rng.gammavariate(
                b.TALK_GAMMA_SHAPE, contact.queue.profile.chat_seconds / b.TALK_GAMMA_SHAPE
            ),
        )
        contact.talk_end_ms = self._now_ms + round(chat_seconds * 1000)
        contact.agent_replied = False
        self._after(
            rng.uniform(*b.CHAT_FIRST_MESSAGE_SECONDS), self._chat_message, (contact, "customer")
        )

    def _chat_message(self, arg: tuple[_Contact, str]) -> None:
        """One message, then the next one from the other side, until the conversation's end."""
        contact, sender = arg
        rng = self._rng
        self._contact_event(contact, CHAT_MESSAGE, {"sender": sender})
        if sender == "agent":
            contact.agent_replied = True
            gap_seconds = rng.expovariate(1 / b.CHAT_MESSAGE_GAP_MEAN_SECONDS)
        elif not contact.agent_replied:
            gap_seconds = rng.expovariate(1 / b.CHAT_FIRST_RESPONSE_MEAN_SECONDS)
        else:
            gap_seconds = rng.expovariate(1 / b.CHAT_MESSAGE_GAP_MEAN_SECONDS)
        gap_seconds = max(b.MIN_STEP_SECONDS, gap_seconds)
        next_sender = "customer" if sender == "agent" else "agent"
        # The agent answers the first question even if the chat runs over its planned length.
        if self._now_ms + gap_seconds * 1000 < contact.talk_end_ms or not contact.agent_replied:
            self._after(gap_seconds, self._chat_message, (contact, next_sender))
        else:
            remaining_seconds = (contact.talk_end_ms - self._now_ms) / 1000
            self._after(
                max(b.MIN_STEP_SECONDS, remaining_seconds), self._conversation_over, contact
            )

    def _conversation_over(self, contact: _Contact) -> None:
        """The planned end of a connected contact: hang-up or transfer."""
        transfer = contact.transfer
        if transfer is None:
            by = "customer" if self._rng.random() < b.CUSTOMER_HANGS_UP_PROBABILITY else "agent"
            self._end_conversation(contact, by)
            return
        kind, target = transfer
        if kind == "external":
            self._contact_event(contact, CONTACT_TRANSFERRED, {"transfer_type": kind})
            self._after(self._rng.uniform(*b.EXTERNAL_HANDOFF_SECONDS), self._handed_off, contact)
            return
        self._contact_event(
            contact, CONTACT_TRANSFERRED, {"transfer_type": kind, "to_queue": target.name}
        )
        contact.transfers += 1
        contact.phase = _TRANSFERRING
        agent = contact.agent
        contact.agent = None
        self._after_contact_work(agent, None, contact.queue.profile.wrapup_seconds)
        self._after(self._rng.uniform(*b.REQUEUE_DELAY_SECONDS), self._requeue, (contact, target))

    def _handed_off(self, contact: _Contact) -> None:
        self._end_conversation(contact, "agent")

    def _requeue(self, arg: tuple[_Contact, _Queue]) -> None:
        contact, target = arg
        self._enqueue(contact, target)

    def _end_conversation(self, contact: _Contact, disconnected_by: str) -> None:
        contact.phase = _WRAPUP
        self._contact_event(contact, CONTACT_ENDED, {"disconnected_by": disconnected_by})
        self._after_contact_work(contact.agent, contact, contact.queue.profile.wrapup_seconds)

    def _after_contact_work(
        self, agent: _Agent, contact: _Contact | None, mean_seconds: float
    ) -> None:
        """Wrap-up; `contact` gets contact.wrapup_ended unless it went on to another queue."""
        agent.activity = _AFTER_CONTACT
        self._report(agent, "after_contact_work")
        wrapup_seconds = max(
            2.0, self._rng.gammavariate(b.WRAPUP_GAMMA_SHAPE, mean_seconds / b.WRAPUP_GAMMA_SHAPE)
        )
        self._after(wrapup_seconds, self._wrapup_end, (agent, contact))

    def _wrapup_end(self, arg: tuple[_Agent, _Contact | None]) -> None:
        agent, contact = arg
        if contact is not None:
            self._contact_event(contact, CONTACT_WRAPUP_ENDED)
            contact.agent = None
            self._finish_contact(contact)
        agent.contact = None
        self._agent_free(agent)

    # -- agents' own schedule -----------------------------------------------------------------

    def _login(self, agent: _Agent) -> None:
        self._schedule_break(agent)
        self._agent_free(agent)

    def _schedule_break(self, agent: _Agent) -> None:
        agent.break_timer += 1
        self._after(
            self._rng.expovariate(1 / b.BREAK_INTERVAL_MEAN_SECONDS),
            self._break_due,
            (agent, agent.break_timer),
        )

    def _break_due(self, arg: tuple[_Agent, int]) -> None:
        agent, timer = arg
        if timer != agent.break_timer:
            return
        if agent.activity == _IDLE:
            self._leave_idle_pools(agent)
            self._start_break(agent, self._rng.uniform(*b.BREAK_SECONDS), regular=True)
        elif agent.activity == _BREAK:  # in a meeting: the break comes later
            self._schedule_break(agent)
        elif agent.activity != _OFFLINE:
            agent.break_due = True  # taken once the current contact is wrapped up

    def _start_break(self, agent: _Agent, seconds: float, regular: bool) -> None:
        """A regular break, or a meeting (`regular` False): the agent is unavailable."""
        if regular:
            agent.break_due = False
        agent.activity = _BREAK
        self._report(agent, "unavailable")
        self._after(seconds, self._break_end, (agent, regular))

    def _break_end(self, arg: tuple[_Agent, bool]) -> None:
        agent, regular = arg
        if regular:
            self._schedule_break(agent)
        self._agent_free(agent)

    def _meeting_starts(self, arg: tuple[_Queue, float, float]) -> None:
        """A coaching session: a share of the queue's own agents join it once they are free."""
        queue, share, meeting_seconds = arg
        attendees = [
            a
            for a in queue.home_agents
            if a.activity not in (_OFFLINE, _BREAK) and not a.logout_due and not a.meeting_seconds
        ]
        for agent in self._rng.sample(attendees, round(share * len(attendees))):
            agent.meeting_seconds = meeting_seconds
            if agent.activity == _IDLE:
                self._leave_idle_pools(agent)
                self._agent_free(agent)

    def _logout(self, agent: _Agent) -> None:
        if agent.activity == _IDLE:
            self._leave_idle_pools(agent)
            agent.activity = _OFFLINE
            self._report(agent, "offline")
        elif agent.activity != _OFFLINE:
            agent.logout_due = True
