"""CPU time and memory of a process from /proc (Linux), without extra dependencies."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat_cpu_seconds(stat_text: str, ticks_per_second: int = CLOCK_TICKS_PER_SECOND) -> float:
    """User + system CPU seconds from /proc/<pid>/stat (the command name may hold spaces and parens)."""
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5); field 3 is fields[0]
    return (utime + stime) / ticks_per_second


def parse_status_bytes(status_text: str, field: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmHWM, VmRSS, ...) in bytes; None when absent."""
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            value, unit = line.split(":", 1)[1].split()
            return int(value) * (1024 if unit == "kB" else 1)
    return None


def parse_system_busy_seconds(proc_stat_text: str, ticks_per_second: int = CLOCK_TICKS_PER_SECOND) -> float:
    """CPU seconds spent busy by the whole machine (all CPUs) from the `cpu` line of /proc/stat."""
    fields = [int(value) for value in proc_stat_text.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / ticks_per_second


def system_busy_seconds() -> float | None:
    try:
        return parse_system_busy_seconds(Path("/proc/stat").read_text())
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    try:
        return parse_stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def memory_bytes(pid: int) -> dict[str, int | None]:
    """Peak (VmHWM) and current (VmRSS) resident memory of `pid`."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {"peak_rss_bytes": None, "rss_bytes": None}
    return {"peak_rss_bytes": parse_status_bytes(text, "VmHWM"), "rss_bytes": parse_status_bytes(text, "VmRSS")}
