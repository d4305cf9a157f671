"""The latency step's stage-timing diagnostic (benchmarks/diagnostics) installs its timers and prints its file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from benchmarks.diagnostics import stages

DIAGNOSTICS = Path(__file__).resolve().parents[2] / "benchmarks" / "diagnostics"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "BENCH_STAGES_OUT"}
    environment.update(env, PYTHONPATH=str(DIAGNOSTICS))
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          check=True)


def test_the_timers_are_installed_only_when_asked(tmp_path):
    check = ("from streams import pipeline, input_batches; "
             "print(pipeline.Pipeline._on_batch.__name__, input_batches.InputForwarder._hold.__name__)")
    assert run_python(check, BENCH_STAGES_OUT=str(tmp_path / "s.json")).stdout.split() == [
        "timed_on_batch", "timed_hold"]
    assert run_python(check).stdout.split() == ["_on_batch", "_hold"]


def test_the_summary_prints_each_stage_with_its_percentiles(tmp_path, capsys):
    path = tmp_path / "stages.json"
    path.write_bytes(orjson.dumps({"forwarded": [float(v) for v in range(1, 101)], "on_tick": []}))
    stages.main(str(path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["forwarded", "100", "50", "90", "99", "100"]
    assert lines[2].split() == ["on_tick", "0"]


def test_the_marker_it_looks_for_is_the_benchs_marker_queue():
    # The worker cannot import benchmarks.workload at start-up (not installed), so the name is repeated.
    import importlib.util

    from benchmarks.workload import MARKER_QUEUE

    spec = importlib.util.spec_from_file_location("stage_timing", DIAGNOSTICS / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # installs nothing: BENCH_STAGES_OUT is not set here
    assert module.MARKER == MARKER_QUEUE.encode()
