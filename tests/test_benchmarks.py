"""The speed benchmarks run against the code as it is (they measure, the tests never time): a
benchmark that no longer starts is caught here, not when someone needs its numbers."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args",
    [
        ("rollout.py", ["--tasks", "2", "--samples", "1", "--max-steps", "2", "--max-new-tokens", "8"]),
        ("explore.py", ["--tasks", "2", "--budget", "4", "--max-steps", "2"]),
    ],
)
def test_a_benchmark_runs_on_a_small_setting_and_states_its_ratio(script, args):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio " in done.stdout
