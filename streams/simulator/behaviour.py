"""How simulated customers, agents and traffic behave: constants shared by the model and the plan.

Ranges are (low, high) for a uniform draw; means are for exponential or gamma
draws. Kept in one place so the traffic plan's expectations and the model's
draws cannot drift apart.
"""

from __future__ import annotations

# Customers waiting in a queue.
SHORT_PATIENCE_PROBABILITY = 0.05  # callers who hang up within seconds unless answered at once
SHORT_PATIENCE_SECONDS = (0.5, 4.5)
REQUEUE_PATIENCE_FACTOR = 1.5  # a transferred customer has already invested time and waits longer
ABANDON_AS_ENDED_PROBABILITY = (
    0.35  # abandons reported as a bare contact.ended instead of contact.abandoned
)
CALLBACK_ACCEPT_PROBABILITY = 0.4  # of voice callers offered a callback, those who take it
CALLBACK_REACTION_SECONDS = (2.0, 8.0)
CALLBACK_DELAY_SECONDS = (120.0, 420.0)  # until the scheduled callback enters the queue again

# Connected contacts.
RING_SECONDS = {"voice": (1.0, 5.0), "chat": (0.5, 2.0)}
TALK_GAMMA_SHAPE = 2.0  # talk and chat durations: gamma with this shape around the queue's mean
MIN_TALK_SECONDS = 8.0
SECOND_HOLD_PROBABILITY = 0.25  # of held calls, those put on hold a second time
HOLD_MEAN_SECONDS = 45.0
MIN_HOLD_SECONDS = 3.0
HOLD_PATIENCE_MEAN_SECONDS = 300.0  # a caller on hold hangs up after this long on average
CUSTOMER_HANGS_UP_PROBABILITY = 0.55  # at the natural end of a conversation, else the agent does
MIN_STEP_SECONDS = 0.5  # between two events of one contact, so event times never tie

# Transfers: (type, weight) per channel; chats cannot go to an external number.
TRANSFER_TYPE_WEIGHTS = {
    "voice": (("blind", 0.45), ("warm", 0.35), ("external", 0.20)),
    "chat": (("blind", 1.0),),
}
CHAT_TRANSFER_FACTOR = 0.5  # chats are transferred half as often as calls
MAX_TRANSFERS = 2
CONSULT_SECONDS = (15.0, 60.0)  # the warm-transfer consultation, with the customer on hold
REQUEUE_DELAY_SECONDS = (0.5, 3.0)
EXTERNAL_HANDOFF_SECONDS = (0.5, 1.5)

# Chat conversations.
CHAT_FIRST_MESSAGE_SECONDS = (1.0, 6.0)
CHAT_FIRST_RESPONSE_MEAN_SECONDS = 20.0
CHAT_MESSAGE_GAP_MEAN_SECONDS = 30.0

# Agents.
WRAPUP_GAMMA_SHAPE = 3.0
BREAK_INTERVAL_MEAN_SECONDS = 2700.0
BREAK_SECONDS = (120.0, 480.0)
# The shift starts at t=0: a few agents are logged in, the others log in after an exponential
# delay (the plan's login_mean_seconds), so staffing grows about as fast as the work does and
# the first minutes are not idle.
SHIFT_START_LOGGED_IN_SHARE = 0.02
INITIAL_BREAK_PROBABILITY = 0.04  # logged in but on a break at t=0
INITIAL_BREAK_SECONDS = (60.0, 300.0)
LOGOUT_PROBABILITY = 0.02  # agents whose shift ends during the run
MIN_AGENTS_PER_QUEUE = 2

# Arrivals swing on a slow wave per queue. On top, every slot some queue (queues take turns) has
# an incident that its staffing cannot absorb, so that some queue or other breaches its targets
# every few minutes: either an arrival burst or a coaching session that a share of its agents
# join, each as soon as their current contact is wrapped up.
SWING_AMPLITUDE = 0.3
SWING_PERIOD_SECONDS = (360.0, 900.0)
INCIDENT_EVERY_SECONDS = 150.0
MEETING_PROBABILITY = 0.5  # of incidents; the others are bursts
BURST_SECONDS = (90.0, 240.0)
BURST_MULTIPLIER = (1.5, 2.2)
MEETING_AGENT_SHARE = (0.25, 0.45)  # of the queue's own agents
MEETING_SECONDS = (180.0, 420.0)

# Assumptions of the traffic plan about outcomes the model only decides at run time.
NOMINAL_ANSWERED_WAIT_SECONDS = 10.0
NOMINAL_ABANDON_PROBABILITY = 0.07
NOMINAL_ABANDON_WAIT_SECONDS = 40.0
NOMINAL_CALLBACK_PROBABILITY = 0.03
