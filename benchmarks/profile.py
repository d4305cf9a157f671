"""Sampling the pipeline worker with py-spy (optional) and summarising where its CPU goes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("py-spy")
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


def start_profiler(pid: int, output: Path, rate_hz: int = 100) -> subprocess.Popen | None:
    """Record collapsed stacks of `pid` until stop_profiler; None when py-spy is not installed."""
    binary = py_spy_binary()
    if binary is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    # --nonblocking: never pause the worker, whose throughput is being measured meanwhile.
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw",
                             "--nolineno", "--nonblocking", "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(process: subprocess.Popen, timeout_seconds: float = 30.0) -> None:
    """SIGINT makes py-spy write what it has recorded."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _package(frame: str) -> str:
    """`Stream._py_aiter (faust/streams/stream.py)` -> `faust`."""
    path = frame[frame.rfind("(") + 1:].rstrip(")")
    return path.split("/", 1)[0].removesuffix(".py")


# Frames every stack passes through (event loop, command line, threads): no information in them.
RUNTIME_PACKAGES = frozenset({"asyncio", "selectors", "threading", "click", "<frozen runpy>", "mode"})
RUNTIME_FILES = ("(streams/cli.py)",)


def _runtime(frame: str) -> bool:
    return _package(frame) in RUNTIME_PACKAGES or frame.endswith(RUNTIME_FILES)


def summarise(raw: str, top: int = 15) -> dict:
    """Shares of samples by package and function (innermost frame), and by any frame on the stack.

    `inclusive` leaves out the event loop and start-up frames every stack shares;
    `callpulse` is the inclusive time of this project's own functions (streams/).
    py-spy samples only threads that are running, so a share of samples is a share of busy CPU.
    """
    self_counts: Counter = Counter()
    inclusive: Counter = Counter()
    packages: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_counts[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            if not _runtime(frame):
                inclusive[frame] += count
    callpulse = Counter({frame: count for frame, count in inclusive.items() if _package(frame) == "streams"})

    def shares(counter: Counter) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(top)]

    if not total:
        return {"samples": 0, "packages": [], "self": [], "inclusive": [], "callpulse": []}
    return {"samples": total, "packages": shares(packages), "self": shares(self_counts),
            "inclusive": shares(inclusive), "callpulse": shares(callpulse)}


def format_summary(summary: dict) -> str:
    lines = [f"{summary['samples']} samples of busy CPU"]
    for title, key in (("self time by package", "packages"), ("self time by function", "self"),
                       ("inclusive time by function (event loop and start-up frames left out)", "inclusive"),
                       ("inclusive time in callpulse's own code", "callpulse")):
        lines.append(f"  {title}:")
        lines.extend(f"    {share:6.1%}  {name}" for name, share in summary[key])
    return "\n".join(lines)
