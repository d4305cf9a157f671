"""`make run`: the embedded broker, one worker and the simulator, until Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"


def log(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    with open(RUN_DIR / f"{name}.log", "ab") as logfile:
        process = subprocess.Popen([sys.executable, "-m", "streams.cli", *args], env=env, cwd=ROOT,
                                   stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    log(f"started {name} (pid {process.pid}, log .run/{name}.log)")
    return process


def wait_http(url: str, timeout: float, processes: list[subprocess.Popen], stopping: list) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in reversed(processes):
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CALLPULSE_DATA_DIR", str(RUN_DIR / "data"))
    port = env.setdefault("CALLPULSE_WEB_PORT", "6066")
    processes: list[subprocess.Popen] = []
    stopping = []
    # Explicit handlers: a shell's background job starts with SIGINT ignored, and Python keeps that.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.append(True))
    try:
        if "CALLPULSE_BROKER" in os.environ:
            log(f"using the broker at {env['CALLPULSE_BROKER']}")
        else:
            broker_port = env.get("CALLPULSE_DEV_BROKER_PORT", "9092")
            env["CALLPULSE_BROKER"] = f"kafka://127.0.0.1:{broker_port}"
            processes.append(start("broker", ["broker", "--port", broker_port], env))
            # Memory storage: a new broker has no topics, so old worker state would not match it.
            subprocess.run(["rm", "-rf", env["CALLPULSE_DATA_DIR"]], check=True)
        processes.append(start("worker", ["worker"], env))
        metrics = f"http://127.0.0.1:{port}/metrics"
        if not wait_http(f"http://127.0.0.1:{port}/readyz", 120, processes, stopping):
            if stopping:
                return 0
            log("the worker did not become ready; see .run/worker.log and .run/broker.log")
            return 1
        processes.append(start("simulator", ["simulate", "--rate", env.get("CALLPULSE_SIM_RATE", "20")], env))
        log("ready:")
        log(f"  metrics      {metrics}")
        log(f"  queues JSON  http://127.0.0.1:{port}/queues   (one queue: /queues/support)")
        log(f"  health       http://127.0.0.1:{port}/healthz  http://127.0.0.1:{port}/readyz")
        log("  outcomes take ~30 s (the reorder skew) to become final; waiting counts move at once")
        log("Ctrl-C stops everything")
        while not stopping:
            for process in processes:
                if process.poll() is not None:
                    log(f"a process exited unexpectedly (code {process.returncode}); stopping; see .run/*.log")
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        log("stopping...")
        stop_all(processes)
        log("stopped")


if __name__ == "__main__":
    sys.exit(main())
