"""Realistic, deterministic contact-center traffic as v1 events, for demos, tests and benchmarks."""

from streams.simulator.emission import (
    FAULT_DUPLICATE,
    FAULT_MALFORMED,
    FAULT_REORDERED,
    SimulatedMessage,
    generate,
)
from streams.simulator.output import produce_to_kafka, write_ndjson
from streams.simulator.plan import QueuePlan, TrafficPlan, plan_traffic
from streams.simulator.settings import DEFAULT_QUEUES, QueueProfile, SimulationSettings

__all__ = [
    "DEFAULT_QUEUES",
    "FAULT_DUPLICATE",
    "FAULT_MALFORMED",
    "FAULT_REORDERED",
    "QueuePlan",
    "QueueProfile",
    "SimulatedMessage",
    "SimulationSettings",
    "TrafficPlan",
    "generate",
    "plan_traffic",
    "produce_to_kafka",
    "write_ndjson",
]
