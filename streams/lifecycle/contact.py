"""Per-contact lifecycle: from a contact's events to its facts, outcome records and status.

Pure functions over a plain-dict state (it is stored in a Faust table through
orjson). The state keeps the contact's events sorted by event time, and every
derived number is recomputed from that sorted list, so the arrival order of
events within the reorder skew never changes a result:

- `derive(events)` walks the sorted events and returns every fact with the
  event time that decided it, plus the contact's current status;
- gauge deltas (status changes) and queue entries are sent at once;
- outcome facts are sent once the watermark passes their time (`finalize`);
  `fin` is the contact's last watermark and `sent` the identities of what went
  out, so nothing is sent twice and an event later than the skew still adds
  what it can without changing an outcome already sent.

A contact that is done keeps only a tombstone (its event ids, for
deduplication) until the retention passes; one that goes silent is expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.contract import events as ev
from streams.contract.events import (
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
from streams.lifecycle import facts as f

# Sort order of events with the same timestamp: the order a real contact goes through.
_RANK = {
    CONTACT_QUEUED: 0,
    CONTACT_ANSWERED: 1,
    CHAT_MESSAGE: 2,
    CONTACT_HOLD_STARTED: 3,
    CONTACT_HOLD_ENDED: 4,
    CONTACT_TRANSFERRED: 5,
    CONTACT_ABANDONED: 6,
    CONTACT_CALLBACK_REQUESTED: 6,
    CONTACT_ENDED: 7,
    CONTACT_WRAPUP_ENDED: 8,
}

# Status kinds (what the current-state gauges count).
NONE = "none"
WAITING = "waiting"
CONNECTED = "connected"
ON_HOLD = "on_hold"
TRANSFERRING = "transferring"
WRAPUP = "wrapup"
DONE = "done"

# Compact event layout in state["ev"]: [t_ms, type, a, b, late, event_id, input offset]
T, TYPE, A, B, LATE, EID, OFFSET = range(7)


@dataclass(frozen=True, slots=True)
class Limits:
    """The processing settings the lifecycle needs, in milliseconds."""

    skew_ms: int = 30_000
    expiry_ms: int = 4 * 3600_000
    dedupe_retention_ms: int = 2 * 3600_000
    wrapup_timeout_ms: int = 1800_000
    late_ms: int = 3600_000  # events older than the longest rolling window (1h)
    max_chat_messages: int = 8


def compact(event: ev.Event, late: bool, offset: int = 0) -> list:
    """The few fields of an event the lifecycle needs, as a small list."""
    t = event.type
    if t == CONTACT_QUEUED:
        a, b = event.queue, event.channel
    elif t == CONTACT_ANSWERED:
        a, b = event.agent_id, None
    elif t == CONTACT_TRANSFERRED:
        a, b = event.transfer_type, event.to_queue
    elif t == CONTACT_ENDED:
        a, b = event.disconnected_by, None
    elif t == CHAT_MESSAGE:
        a, b = event.sender, None
    else:
        a, b = None, None
    return [event.occurred_at_ms, t, a, b, 1 if late else 0, event.event_id, offset]


def _sort_key(e: list) -> tuple:
    return (e[T], _RANK.get(e[TYPE], 9), e[EID])


def new_state(partition: int) -> dict:
    return {"p": partition, "ev": [], "seen": {}, "fin": 0, "fo": -1, "sent": [], "st": None, "last": 0,
            "done": 0, "end": None}


@dataclass(slots=True)
class Derived:
    """Everything that follows from a contact's sorted events."""

    facts: list[dict] = field(default_factory=list)  # outcome facts, with "t" and "q"/"c"
    records: list[dict] = field(default_factory=list)  # contact-outcome records, with "t"
    status: list | None = None  # [kind, queue, channel, enqueued_at_ms] for gauges
    finished: bool = False  # nothing more is expected of this contact
    end_ms: int | None = None  # when it ended (for the wrap-up timeout)
    pending_end_record: dict | None = None  # "ended" record waiting for the wrap-up's handle time
    left: dict | None = None  # the latest left_queue record
    holds: int = 0
    hold_ms: int = 0
    transfers: int = 0


def _status_vector(kind: str, queue: str | None, channel: str | None, enq_ms: int | None) -> list | None:
    if queue is None or channel is None or kind not in (WAITING, CONNECTED, ON_HOLD):
        return None
    return [kind, queue, channel, enq_ms if kind == WAITING else None]


def derive(contact_id: str, events: list[list], short_abandon_seconds) -> Derived:
    """Walk the sorted events: outcome facts, outcome records and the current status.

    `short_abandon_seconds(queue)` gives a queue's threshold (for the records'
    outcome; the queue stage classifies its own counters the same way).
    `_status_walk` repeats the status part of this walk for apply_event; keep them in step.
    The loop uses no closures (they would turn its variables into slower cell variables)
    and builds each fact and record with one dict literal: it runs on every finalize.
    """
    facts: list[dict] = []
    records: list[dict] = []
    end_ms = None
    pending_end_record = None
    kind = NONE
    queue = channel = None
    enq_ms = None  # latest queue entry
    ans_queue = None  # queue the contact was answered from
    ans_ms = None
    agent = None
    hold_ms = None  # when the running hold started
    holds = hold_total_ms = transfers = 0
    awaiting_first_response = False
    handle_pending = False
    last_outcome = None
    left = None  # the latest left_queue record (for the "ended" record)

    for t, typ, a, b, late, _, _ in events:
        if typ == CONTACT_QUEUED:
            if kind == WAITING:
                # Moved to another queue without an answer: it left this one as transferred.
                facts.append(_left_fact(t, queue, channel, late, f.QUEUE_TRANSFERRED, t - enq_ms))
                last_outcome = f.QUEUE_TRANSFERRED
                left = _left_record(contact_id, queue, channel, last_outcome, enq_ms, t, agent)
                records.append(left)
            elif kind == ON_HOLD:
                hold_total_ms += t - hold_ms
                facts.append(_hold_ended_fact(t, ans_queue, channel, late, t - hold_ms, False))
                hold_ms = None
            queue, channel = a, b
            enq_ms = t
            kind = WAITING
            facts.append(_fact(f.ENQUEUED, t, queue, channel, late))
        elif typ == CONTACT_ANSWERED:
            if kind == WAITING:
                facts.append(_left_fact(t, queue, channel, late, f.ANSWERED, t - enq_ms))
                agent = a
                last_outcome = f.ANSWERED
                left = _left_record(contact_id, queue, channel, last_outcome, enq_ms, t, agent)
                records.append(left)
                ans_queue, ans_ms = queue, t
                kind = CONNECTED
                awaiting_first_response = channel == "chat"
                handle_pending = True
            elif kind == TRANSFERRING and ans_queue is not None:
                # Warm or blind transfer straight to another agent, no queue in between.
                kind = CONNECTED
                agent = a
        elif typ in (CONTACT_ABANDONED, CONTACT_CALLBACK_REQUESTED):
            if kind == WAITING:
                outcome = f.ABANDONED if typ == CONTACT_ABANDONED else f.CALLBACK
                wait = t - enq_ms
                facts.append(_left_fact(t, queue, channel, late, outcome, wait))
                if outcome == f.ABANDONED:
                    outcome = f.classify_abandon(wait, short_abandon_seconds(queue))
                last_outcome = outcome
                left = _left_record(contact_id, queue, channel, outcome, enq_ms, t, agent)
                records.append(left)
                kind = DONE if outcome != f.CALLBACK else NONE
                if kind == DONE:
                    end_ms = t
                    records.append(_ended_record(contact_id, left, outcome, holds, hold_total_ms, transfers,
                                                 None, t))
        elif typ == CONTACT_HOLD_STARTED:
            if kind == CONNECTED:
                hold_ms = t
                holds += 1
                kind = ON_HOLD
                facts.append(_fact(f.HOLD_STARTED, t, ans_queue, channel, late))
        elif typ == CONTACT_HOLD_ENDED:
            if kind == ON_HOLD:
                hold_total_ms += t - hold_ms
                facts.append(_hold_ended_fact(t, ans_queue, channel, late, t - hold_ms, False))
                hold_ms = None
                kind = CONNECTED
        elif typ == CONTACT_TRANSFERRED:
            if kind == WAITING:
                # Routed on before an answer (a flow-out): it left the queue, not abandoned.
                facts.append(_left_fact(t, queue, channel, late, f.QUEUE_TRANSFERRED, t - enq_ms))
                last_outcome = f.QUEUE_TRANSFERRED
                left = _left_record(contact_id, queue, channel, last_outcome, enq_ms, t, agent)
                records.append(left)
                kind = NONE
            elif kind in (CONNECTED, ON_HOLD) and ans_queue is not None:
                if kind == ON_HOLD:
                    hold_total_ms += t - hold_ms
                    facts.append(_hold_ended_fact(t, ans_queue, channel, late, t - hold_ms, False))
                    hold_ms = None
                transfers += 1
                last_outcome = f.QUEUE_TRANSFERRED
                item = _fact(f.TRANSFERRED, t, ans_queue, channel, late)
                item["tt"] = a
                facts.append(item)
                kind = TRANSFERRING
        elif typ == CONTACT_ENDED:
            if kind == WAITING:
                wait = t - enq_ms
                facts.append(_left_fact(t, queue, channel, late, f.ABANDONED, wait))
                last_outcome = f.classify_abandon(wait, short_abandon_seconds(queue))
                left = _left_record(contact_id, queue, channel, last_outcome, enq_ms, t, agent)
                records.append(left)
            elif kind == ON_HOLD:
                hold_total_ms += t - hold_ms
                by_customer = a is None or a == "customer"
                facts.append(_hold_ended_fact(t, ans_queue, channel, late, t - hold_ms, by_customer))
                hold_ms = None
            if kind != DONE:
                end_ms = t
                if left is not None:
                    record = _ended_record(contact_id, left, last_outcome, holds, hold_total_ms, transfers, None, t)
                    if handle_pending:
                        pending_end_record = record  # sent with the handle time at wrap-up end
                    else:
                        records.append(record)
            kind = WRAPUP if handle_pending else DONE
        elif typ == CONTACT_WRAPUP_ENDED:
            if handle_pending and ans_ms is not None:
                duration = t - ans_ms
                facts.append(_duration_fact(f.HANDLED, t, ans_queue, channel, late, duration))
                handle_pending = False
                if pending_end_record is not None:
                    record, pending_end_record = pending_end_record, None
                    record["handle_seconds"] = duration / 1000
                    record["t"] = t
                    records.append(record)
                if kind in (WRAPUP, DONE):
                    kind = DONE
        elif typ == CHAT_MESSAGE:
            if awaiting_first_response and a == "agent" and kind in (CONNECTED, ON_HOLD):
                facts.append(_duration_fact(f.FIRST_RESPONSE, t, ans_queue, channel, late, t - ans_ms))
                awaiting_first_response = False

    if kind == WAITING:
        status = _status_vector(WAITING, queue, channel, enq_ms)
    elif kind in (CONNECTED, ON_HOLD):
        status = _status_vector(kind, ans_queue, channel, None)
    else:
        status = None
    return Derived(facts, records, status, kind == DONE, end_ms, pending_end_record, left, holds, hold_total_ms,
                   transfers)


def _status_walk(events: list[list]) -> tuple[list | None, int | None]:
    """Only the current status and end time of `derive`: what apply_event needs on every event.

    The same state machine without building facts and records (several times
    cheaper); a unit test checks that both walks agree.
    """
    kind = NONE
    queue = channel = enq_ms = ans_queue = ans_ms = end_ms = None
    handle_pending = False
    for t, typ, a, b, _, _, _ in events:
        if typ == CONTACT_QUEUED:
            queue, channel, enq_ms = a, b, t
            kind = WAITING
        elif typ == CONTACT_ANSWERED:
            if kind == WAITING:
                ans_queue, ans_ms = queue, t
                kind = CONNECTED
                handle_pending = True
            elif kind == TRANSFERRING and ans_queue is not None:
                kind = CONNECTED
        elif typ == CONTACT_ABANDONED:
            if kind == WAITING:
                kind = DONE
                end_ms = t
        elif typ == CONTACT_CALLBACK_REQUESTED:
            if kind == WAITING:
                kind = NONE
        elif typ == CONTACT_HOLD_STARTED:
            if kind == CONNECTED:
                kind = ON_HOLD
        elif typ == CONTACT_HOLD_ENDED:
            if kind == ON_HOLD:
                kind = CONNECTED
        elif typ == CONTACT_TRANSFERRED:
            if kind == WAITING:
                kind = NONE
            elif kind in (CONNECTED, ON_HOLD) and ans_queue is not None:
                kind = TRANSFERRING
        elif typ == CONTACT_ENDED:
            if kind != DONE:
                end_ms = t
            kind = WRAPUP if handle_pending else DONE
        elif typ == CONTACT_WRAPUP_ENDED:
            if handle_pending and ans_ms is not None:
                handle_pending = False
                if kind in (WRAPUP, DONE):
                    kind = DONE
    if kind == WAITING:
        return _status_vector(WAITING, queue, channel, enq_ms), end_ms
    if kind in (CONNECTED, ON_HOLD):
        return _status_vector(kind, ans_queue, channel, None), end_ms
    return None, end_ms


# Fact builders: a dict literal with or without "l" rather than adding keys one by one (it is
# faster), in the key order facts always had: k, t, q, c, l, then the fact's numbers.

def _fact(kind: str, t: int, queue: str | None, channel: str | None, late: int) -> dict:
    """An outcome fact without its numbers; "l" marks one from a late event."""
    if late:
        return {"k": kind, "t": t, "q": queue, "c": channel, "l": 1}
    return {"k": kind, "t": t, "q": queue, "c": channel}


def _left_fact(t: int, queue: str | None, channel: str | None, late: int, outcome: str, wait_ms: int) -> dict:
    if late:
        return {"k": f.LEFT_QUEUE, "t": t, "q": queue, "c": channel, "l": 1, "o": outcome, "wait": wait_ms}
    return {"k": f.LEFT_QUEUE, "t": t, "q": queue, "c": channel, "o": outcome, "wait": wait_ms}


def _hold_ended_fact(t: int, queue: str | None, channel: str | None, late: int, duration_ms: int,
                     abandoned: bool) -> dict:
    ab = 1 if abandoned else 0
    if late:
        return {"k": f.HOLD_ENDED, "t": t, "q": queue, "c": channel, "l": 1, "dur": duration_ms, "ab": ab}
    return {"k": f.HOLD_ENDED, "t": t, "q": queue, "c": channel, "dur": duration_ms, "ab": ab}


def _duration_fact(kind: str, t: int, queue: str | None, channel: str | None, late: int, duration_ms: int) -> dict:
    if late:
        return {"k": kind, "t": t, "q": queue, "c": channel, "l": 1, "dur": duration_ms}
    return {"k": kind, "t": t, "q": queue, "c": channel, "dur": duration_ms}


def _left_record(contact_id: str, queue: str | None, channel: str | None, outcome: str, enq_ms: int, t: int,
                 agent: str | None) -> dict:
    return {
        "record": "left_queue",
        "contact_id": contact_id,
        "queue": queue,
        "channel": channel,
        "outcome": outcome,
        "enqueued_at_ms": enq_ms,
        "left_queue_at_ms": t,
        "wait_ms": t - enq_ms,
        "agent_id": agent if outcome == f.ANSWERED else None,
        "t": t,
    }


def _ended_record(contact_id, left, outcome, holds, hold_ms, transfers, handle_seconds, t) -> dict:
    left = left or {}
    return {
        "record": "ended",
        "contact_id": contact_id,
        "queue": left.get("queue"),
        "channel": left.get("channel"),
        "outcome": outcome,
        "enqueued_at_ms": left.get("enqueued_at_ms"),
        "left_queue_at_ms": left.get("left_queue_at_ms"),
        "wait_ms": left.get("wait_ms"),
        "agent_id": left.get("agent_id"),
        "holds": holds,
        "hold_seconds": hold_ms / 1000,
        "transfers": transfers,
        "handle_seconds": handle_seconds,
        "ended_at_ms": t,
        "t": t,
    }


def gauge_deltas(old: list | None, new: list | None) -> list[dict]:
    """Facts that move one contact's contribution to the current-state gauges from old to new."""
    if old == new:
        return []
    deltas = []
    for status, sign in ((old, -1), (new, 1)):
        if status is None:
            continue
        kind, queue, channel, enq_ms = status
        delta = {"k": f.GAUGE, "q": queue, "c": channel}
        if kind == WAITING:
            delta["w"] = enq_ms // 1000
            delta["dw"] = sign
        else:
            delta["da"] = sign
            if kind == ON_HOLD:
                delta["dh"] = sign
        deltas.append(delta)
    return deltas


@dataclass(slots=True)
class Outcome:
    """What processing one message did to one contact."""

    state: dict | None  # new state; None = delete the key
    facts: list[dict] = field(default_factory=list)  # gauge deltas and final outcome facts, in order
    records: list[dict] = field(default_factory=list)  # final contact-outcome records
    duplicate: bool = False
    replay: bool = False
    late: bool = False


def fact_identity(item: dict) -> str:
    """What makes a fact the same fact across re-derivations.

    A queue visit is identified by its queue and entry time, not by its
    outcome: once a visit's outcome is sent, an event arriving later than the
    skew cannot add a second, different outcome for it.
    """
    if item["k"] == f.LEFT_QUEUE:
        return f"left|{item['q']}|{item['t'] - item['wait']}"
    return f"{item['k']}|{item['t']}"


def record_identity(record: dict) -> str:
    if record["record"] == "left_queue":
        return f"record|left|{record['queue']}|{record['enqueued_at_ms']}"
    return "record|ended"


def _insert_sorted(events: list[list], item: list) -> None:
    if not events or events[-1][T] < item[T]:
        events.append(item)  # the usual case: later than every event so far
        return
    key = _sort_key(item)
    i = len(events)
    while i > 0 and _sort_key(events[i - 1]) > key:
        i -= 1
    events.insert(i, item)


def _keep_chat_message(events: list[list], item: list, limit: int) -> bool:
    """Only agent messages matter (first response), and only the earliest few by event time."""
    if item[A] != "agent":
        return False
    if len(events) < limit:
        return True
    count, latest = 0, None
    for e in events:
        if e[TYPE] == CHAT_MESSAGE:
            count += 1
            latest = e  # events are sorted: the last one is the latest
    if count < limit:
        return True
    if _sort_key(item) < _sort_key(latest):
        events.remove(latest)
        return True
    return False


def _send_new(state: dict, derived: Derived, result: Outcome, before_ms: int) -> None:
    """Append to `result` the facts and records before `before_ms` not sent yet, and mark them sent.

    Queue entries are left out: apply_event sends each one as it arrives.
    """
    sent = state["sent"]
    known = set(sent)
    for item in derived.facts:
        if item["t"] < before_ms and item["k"] != f.ENQUEUED:
            identity = fact_identity(item)
            if identity not in known:
                known.add(identity)
                sent.append(identity)
                result.facts.append(item)
    for record in derived.records:
        if record["t"] < before_ms:
            identity = record_identity(record)
            if identity not in known:
                known.add(identity)
                sent.append(identity)
                result.records.append(record)


def apply_event(state: dict | None, contact_id: str, event: ev.Event, offset: int, partition: int,
                stream_time_ms: int, limits: Limits, short_abandon_seconds) -> Outcome:
    """Add one event to a contact: dedupe it, re-derive, and return what is final already.

    `offset` identifies the message; the same event_id at the same offset is a
    replay after a restart (not a duplicate), whose state change is already in.
    Sent at once: gauge deltas and the queue entry. Outcomes wait for
    `finalize`, even those of an event later than the skew (it is due at once).
    """
    state = state if state is not None else new_state(partition)
    seen = state["seen"]
    previous = seen.get(event.event_id)
    if previous is not None:
        return Outcome(state=state, duplicate=previous != offset, replay=previous == offset)
    seen[event.event_id] = offset
    occurred_at_ms = event.occurred_at_ms
    late = occurred_at_ms < stream_time_ms - limits.late_ms
    if state["done"]:
        # A new lifecycle for a contact that had finished (e.g. a callback): start over, keep ids.
        state.update(ev=[], fin=0, fo=-1, st=None, done=0, end=None, sent=[])
    # max() of two ints, written out: it is a costly call on this path.
    if occurred_at_ms > state["last"]:
        state["last"] = occurred_at_ms
    # When it arrived, in the partition's event time: timeouts of a contact whose events
    # all arrive late run from its arrival, not from its (long past) event times.
    arrived_ms = stream_time_ms - limits.skew_ms
    previous_arrival_ms = state.get("arr", 0)
    state["arr"] = previous_arrival_ms if previous_arrival_ms >= arrived_ms else arrived_ms
    item = compact(event, late, offset)
    events = state["ev"]
    if event.type == CHAT_MESSAGE:
        if _keep_chat_message(events, item, limits.max_chat_messages):
            _insert_sorted(events, item)
        # Chat messages never change the status or the end time: nothing to re-derive.
        return Outcome(state=state, late=late)
    _insert_sorted(events, item)
    status, end_ms = _status_walk(events)
    state["end"] = end_ms if status is None else None
    facts = gauge_deltas(state["st"], status)
    state["st"] = status
    if event.type == CONTACT_QUEUED:
        # A queue entry is final the moment it happens: no later event can undo it.
        entry = {"k": f.ENQUEUED, "t": occurred_at_ms, "q": event.queue, "c": event.channel}
        if late:
            entry["l"] = 1
        facts.append(entry)
    return Outcome(state=state, facts=facts, late=late)


def finalize(state: dict, contact_id: str, watermark_ms: int, limits: Limits, short_abandon_seconds,
             covered_offset: int | None = None) -> Outcome:
    """Send what became final now that no event before `watermark_ms` can arrive any more.

    Only events up to input offset `covered_offset` are considered (all when
    None): a tick carries the input offset its sweep had reached, so replaying
    it after a restart gives the same result however Faust interleaves the
    replayed input and ticks. Also: expiry of a silent contact, the tombstone
    of a finished one, and its deletion once the dedupe retention has passed.
    """
    result = Outcome(state=state)
    if state["done"]:
        if watermark_ms >= max(state["last"], state.get("arr", 0)) + limits.dedupe_retention_ms:
            result.state = None
        return result
    events = state["ev"]
    if covered_offset is None:
        covered = events
        fo = max(state["fo"], max((e[OFFSET] for e in events), default=-1))
    else:
        covered = _covered(events, covered_offset)
        fo = max(state["fo"], covered_offset)
    uncovered = len(covered) < len(events)
    if watermark_ms <= state["fin"] and fo <= state["fo"]:
        return result
    derived = derive(contact_id, covered, short_abandon_seconds)
    state["fin"] = max(state["fin"], watermark_ms)
    state["fo"] = fo
    _send_new(state, derived, result, state["fin"])
    if uncovered:
        return result
    last = covered[-1][T] if covered else state["last"]  # sorted by time
    watermark_ms = state["fin"]
    quiet_since = max(last, state.get("arr", 0))
    if derived.finished and watermark_ms > last:
        _tombstone(state, result)
    elif state["end"] is not None and watermark_ms >= max(state["end"], quiet_since) + limits.wrapup_timeout_ms:
        # Ended, but the wrap-up never came: stop waiting for it (no handle time).
        if derived.pending_end_record is not None:
            result.records.append(derived.pending_end_record)
        _tombstone(state, result)
    elif watermark_ms >= quiet_since + limits.expiry_ms:
        _expire(state, contact_id, derived, watermark_ms, result)
        _tombstone(state, result)
    return result


def _covered(events: list[list], covered_offset: int) -> list[list]:
    """The events up to input offset `covered_offset`; usually all of them, then without a copy."""
    for e in events:
        if e[OFFSET] > covered_offset:
            return [e for e in events if e[OFFSET] <= covered_offset]
    return events


def _expire(state: dict, contact_id: str, derived: Derived, watermark_ms: int, result: Outcome) -> None:
    """A contact with no event for the expiry time: count it expired where it was."""
    status = derived.status
    if status is None:
        return
    kind, queue, channel, enq_ms = status
    item = {"k": f.EXPIRED, "t": watermark_ms, "q": queue, "c": channel}
    if kind == WAITING:
        item["wait"] = watermark_ms - enq_ms
    result.facts.append(item)
    record = _ended_record(contact_id, derived.left, f.OUTCOME_EXPIRED, derived.holds, derived.hold_ms,
                           derived.transfers, None, watermark_ms)
    record.update(queue=queue, channel=channel, ended_at_ms=None)
    if kind == WAITING:
        record.update(enqueued_at_ms=enq_ms, left_queue_at_ms=None, wait_ms=None, agent_id=None)
    result.records.append(record)


def _tombstone(state: dict, result: Outcome) -> None:
    """Keep only what deduplication needs; take the contact out of every gauge."""
    result.facts.extend(gauge_deltas(state["st"], None))
    state.update(ev=[], done=1, st=None, sent=[], end=None)


def due_ms(state: dict, limits: Limits) -> int:
    """The watermark at which `finalize` has something to do for this contact."""
    if state["done"]:
        return max(state["last"], state.get("arr", 0)) + limits.dedupe_retention_ms
    quiet_since = max(state["last"], state.get("arr", 0))
    due = quiet_since + limits.expiry_ms
    end = state.get("end")
    if end is not None:
        due = min(due, max(end, quiet_since) + limits.wrapup_timeout_ms)
    # Events not finalised yet: those after the last watermark, and those that arrived
    # later than it (not covered by the last finalize); the latter are due at once.
    # The events are sorted by time, so the first such event is the earliest.
    fin, fo = state["fin"], state["fo"]
    for e in state["ev"]:
        if e[T] >= fin or e[OFFSET] > fo:
            return min(due, e[T] + 1)  # final once the watermark is past it
    return due
