"""Integration-test harness: worker processes on the embedded broker, producing, scraping, polling.

Every test gets its own app id and input topic, so tests sharing one broker
never see each other's messages. Waiting is always a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.2,
             message: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as problem:  # the worker may not be up yet
            last_error = problem
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}"
                         + (f" (last error: {last_error})" if last_error else ""))


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as problem:
        return problem.code, problem.read()


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} for every sample of a scrape."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@dataclass
class Stack:
    """One test's topic namespace on the shared broker."""

    bootstrap: str
    tmp: Path
    app_id: str = field(default_factory=lambda: f"cp-{uuid.uuid4().hex[:8]}")
    partitions: int = 4
    broker_log: Path | None = None

    def broker_log_tail(self, lines: int = 40) -> str:
        """The end of the broker's log, to quote in a failure message."""
        if self.broker_log is None or not self.broker_log.exists():
            return "(no broker log)"
        tail = self.broker_log.read_text(errors="replace").splitlines()[-lines:]
        return f"broker log {self.broker_log}:\n" + "\n".join(tail)

    @property
    def input_topic(self) -> str:
        return f"{self.app_id}.contact-events"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "CALLPULSE_BROKER": f"kafka://{self.bootstrap}",
            "CALLPULSE_APP_ID": self.app_id,
            "CALLPULSE_INPUT_TOPIC": self.input_topic,
            "CALLPULSE_PARTITIONS": str(self.partitions),
            "CALLPULSE_IDLE_FINALIZE_SECONDS": "1",
            "CALLPULSE_LOG_LEVEL": "warn",
        })
        env.update(extra)
        return env

    def worker(self, name: str = "w1", config: str | None = None, **extra: str) -> Worker:
        """A worker of this stack; `extra` adds or overrides CALLPULSE_* environment variables."""
        return Worker(self, name, config, extra)

    def produce(self, messages: Iterable[tuple[bytes | None, bytes]], topic: str | None = None) -> int:
        return asyncio.run(_produce(self.bootstrap, topic or self.input_topic, list(messages)))

    def consume(self, topic: str, count: int, timeout: float = 30.0,
                accept: Callable[[object], bool] | None = None) -> list:
        """The first `count` records of `topic` that `accept` (shared topics hold other tests' records)."""
        return asyncio.run(_consume(self.bootstrap, topic, count, timeout, accept or (lambda record: True)))


class Worker:
    """A `callpulse worker` subprocess with its own web port and state directory."""

    def __init__(self, stack: Stack, name: str, config: str | None, extra_env: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.extra_env = extra_env or {}
        self.name = name
        self.port = free_port()
        self.data_dir = stack.tmp / f"data-{name}"
        self.log_path = stack.tmp / f"{name}.log"
        self.config_path = None
        if config is not None:
            self.config_path = stack.tmp / f"{name}-config.yaml"
            self.config_path.write_text(config)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 180.0) -> Worker:
        extra = {"CALLPULSE_WEB_PORT": str(self.port), "CALLPULSE_DATA_DIR": str(self.data_dir),
                 **self.extra_env}
        if self.config_path:
            extra["CALLPULSE_CONFIG"] = str(self.config_path)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                            env=self.stack.env(**extra), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            return http_get(f"{self.url}/readyz")[0] == 200
        wait_for(ready, timeout, message=f"worker {self.name} ready")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def metrics(self) -> dict[tuple[str, tuple], float]:
        status, body = http_get(f"{self.url}/metrics")
        assert status == 200, body
        return parse_metrics(body.decode())

    def metrics_text(self) -> str:
        return http_get(f"{self.url}/metrics")[1].decode()

    def get_json(self, path: str):
        status, body = http_get(f"{self.url}{path}")
        return status, orjson.loads(body) if body else None

    def stop(self, timeout: float = 30.0) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no flush."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def sample(metrics: dict, name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in messages]
        await producer.flush()
        for future in futures:
            await future
    finally:
        await producer.stop()
    return len(messages)


async def _consume(bootstrap: str, topic: str, count: int, timeout: float, accept) -> list:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(m for m in messages if accept(m))
    finally:
        await consumer.stop()
    return records
