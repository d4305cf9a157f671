"""How long the worker's Kafka consumers wait in a fetch for data to arrive: Faust fixes it at 1.5 s.

A fetch asks the broker for new records on all of a consumer's partitions and
waits up to `fetch.max.wait.ms` for them. Apache Kafka answers as soon as any
record arrives, so there the wait only paces an idle consumer. Brokers that do
not answer early hold every fetch for the whole wait. The embedded broker used
here (tansu) is one of them when a fetch covers more than one partition.

The worker reads its input through three consumers in a row: the forwarder,
then the lifecycle agent, then the queue agent. With Faust's fixed 1,500 ms, a
`contact.queued` event reached /metrics 2.2 s after it was produced (median,
`make bench` at 2,000 events/s), and its batch waited 1.1 to 1.6 s in the
lifecycle agent's fetch alone.

`CALLPULSE_FETCH_MAX_WAIT_MS` (default 100) sets the wait for the forwarder
and for Faust's consumer. Faust offers no setting for it. So
`limit_fetch_wait` wraps the method of Faust's consumer thread that creates
the aiokafka consumer (`_create_worker_consumer`), and sets the consumer's
`_fetch_max_wait_ms` before it starts. This is private API, pinned by
tests/unit/test_faust_fetch.py.
"""

from __future__ import annotations

import faust


def limit_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make the aiokafka consumer Faust creates for `app` wait at most `fetch_max_wait_ms` per fetch."""
    thread = app.consumer._thread
    create = thread._create_worker_consumer

    def create_worker_consumer(transport):
        consumer = create(transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    thread._create_worker_consumer = create_worker_consumer
