"""Shared fixtures: an embedded broker and a topic namespace per test."""

from __future__ import annotations

import pytest

from tests.harness import Stack, free_port


@pytest.fixture
def broker_log(tmp_path_factory):
    """Where the test's broker writes its log (failures that involve the broker quote its tail)."""
    return tmp_path_factory.mktemp("broker") / "broker.log"


@pytest.fixture
def broker(broker_log):
    """A fresh embedded broker (tansu, memory storage) on a free port, for one test.

    Per test, not per session: tansu's memory log slows down as record batches pile
    up, so tests must not inherit each other's topics.
    """
    from streams.broker import start_broker, stop_broker

    port = free_port()
    process = start_broker(port=port, log_path=broker_log)
    yield f"127.0.0.1:{port}"
    stop_broker(process)


@pytest.fixture
def stack(broker, broker_log, tmp_path):
    """A fresh app id and input topic on the test's broker; workers started here are killed after."""
    stack = Stack(bootstrap=broker, tmp=tmp_path, broker_log=broker_log)
    workers = []
    original = stack.worker

    def worker(name="w1", config=None, **extra):
        w = original(name, config, **extra)
        workers.append(w)
        return w

    stack.worker = worker
    yield stack
    for w in workers:
        w.kill()
