"""Print the percentiles of a stage-timing file (see benchmarks/diagnostics/sitecustomize.py)."""

from __future__ import annotations

import sys

import orjson

from benchmarks.stats import percentile


def main(path: str) -> None:
    with open(path, "rb") as file:
        samples = orjson.loads(file.read())
    print(f"{'stage (ms)':18} {'n':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for name, values in samples.items():
        if values:
            print(f"{name:18} {len(values):6} {percentile(values, 50):7.0f} {percentile(values, 90):7.0f}"
                  f" {percentile(values, 99):7.0f} {max(values):7.0f}")
        else:
            print(f"{name:18} {0:6}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m benchmarks.diagnostics.stages STAGES.json")
    main(sys.argv[1])
