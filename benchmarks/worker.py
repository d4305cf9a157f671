"""One `callpulse worker` subprocess under test: started like the integration tests start theirs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import procfs
from benchmarks.scrape import http_get

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_env(bootstrap: str, app_id: str, input_topic: str, partitions: int, data_dir: Path,
               web_port: int, producer_max_batch_bytes: int = 0) -> dict[str, str]:
    """The worker's environment: its own app id, state directory and web port on the embedded broker."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLPULSE_")}
    env.update({
        "CALLPULSE_BROKER": f"kafka://{bootstrap}",
        "CALLPULSE_APP_ID": app_id,
        "CALLPULSE_INPUT_TOPIC": input_topic,
        "CALLPULSE_PARTITIONS": str(partitions),
        "CALLPULSE_DATA_DIR": str(data_dir),
        "CALLPULSE_WEB_PORT": str(web_port),
        "CALLPULSE_LOG_LEVEL": "warn",
        "CALLPULSE_IDLE_FINALIZE_SECONDS": "2",
    })
    if producer_max_batch_bytes:  # 0: Faust's default batching
        env["CALLPULSE_PRODUCER_MAX_BATCH_BYTES"] = str(producer_max_batch_bytes)
    return env


class BenchWorker:
    """A worker process with its log in the bench directory; stop() ends exactly this process group."""

    def __init__(self, bootstrap: str, app_id: str, input_topic: str, partitions: int, data_dir: Path,
                 log_path: Path, producer_max_batch_bytes: int = 0) -> None:
        self.app_id = app_id
        self.port = free_port()
        self.log_path = log_path
        self.env = worker_env(bootstrap, app_id, input_topic, partitions, data_dir, self.port,
                              producer_max_batch_bytes)
        self.process: subprocess.Popen | None = None
        self.started_monotonic = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> "BenchWorker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # From the repository root, so the worker runs this checkout's streams package.
            self.process = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=self.env, cwd=REPO,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_monotonic = time.monotonic()
        return self

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker {self.app_id} exited with code {self.process.returncode};"
                               f" see {self.log_path}:\n{self.log_tail()}")

    async def wait_ready(self, timeout_seconds: float = 120.0) -> float:
        """Poll /readyz until 200; return the monotonic time it first answered 200."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = await asyncio.to_thread(http_get, f"{self.url}/readyz", 2.0)
            except OSError:
                status = None
            if status == 200:
                return time.monotonic()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"worker {self.app_id} not ready within {timeout_seconds:.0f} s; see {self.log_path}")

    async def get(self, path: str, timeout_seconds: float = 30.0) -> tuple[int, bytes]:
        self.check_alive()
        return await asyncio.to_thread(http_get, f"{self.url}{path}", timeout_seconds)

    async def metrics_text(self, timeout_seconds: float = 30.0) -> str:
        status, body = await self.get("/metrics", timeout_seconds)
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}")
        return body.decode()

    async def scrape_cpu_seconds(self, scrapes: int = 10) -> float | None:
        """Worker CPU per GET /metrics: the exporter builds every series at scrape time."""
        before = self.cpu_seconds()
        for _ in range(scrapes):
            await self.metrics_text()
        after = self.cpu_seconds()
        return (after - before) / scrapes if before is not None and after is not None else None

    def cpu_seconds(self) -> float | None:
        return procfs.cpu_seconds(self.pid)

    def memory(self) -> dict[str, int | None]:
        return procfs.memory_bytes(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_seconds: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
