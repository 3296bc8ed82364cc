"""Environment speed, all in one run: reset and step latency per environment (median, p95), a
lock-step rollout's episodes/s with and without worker processes, and the share of stage 1's
wall time spent generating (the tiny model) on ScienceWorld and CodeContests with workers.

    .venv/bin/python benchmarks/envs.py [--episodes 8] [--alfworld-data ../shared/data/alfworld]

ScienceWorld needs Java; ALFWorld its data (`--alfworld-data`, else $ALFWORLD_DATA); an
environment that cannot run here is reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from leafe_recipe.envs.base import EnvUnavailable, get_family
from leafe_recipe.envs.pool import EnvPool
from leafe_recipe.policy import Completion, Sampling
from leafe_recipe.rollout import run_episodes

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "sokoban": ({"max_steps": 12}, {}),
    "codecontests": ({"max_turns": 2}, {"path": str(REPO / "tests" / "data" / "codecontests_small.jsonl")}),
    "scienceworld": ({"max_steps": 20}, {}),
    "alfworld": ({"max_steps": 20}, {}),
}


class Random:
    """A stand-in policy: each answer is one of the environment's valid actions (or the expert's)."""

    def __init__(self, family, seed=0):
        self.family, self.rng = family, random.Random(seed)

    def generate(self, conversations, sampling):
        out = []
        for conv in conversations:
            commands = [line for line in conv[-1]["content"].split("Admissible commands: ")[-1].split(", ")] if "Admissible" in conv[-1]["content"] else []
            text = f"Action: {self.rng.choice(commands).strip('.')}" if commands else self.rng.choice(
                ["Action: up", "Action: left", "Action: look around", "Action: inventory", "```python\nprint(input())\n```"])
            out.append(Completion(text, 8, False))
        return out


def quantiles(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {1000 * statistics.median(xs):8.2f} ms, p95 {1000 * xs[int(0.95 * (len(xs) - 1))]:8.2f} ms"


def latencies(name: str, episodes: int) -> None:
    kwargs, task_kwargs = SETTINGS[name]
    family = get_family(name)
    tasks = family.tasks("test", episodes, **task_kwargs)
    resets, steps = [], []
    with EnvPool(replace(family, processes=False), kwargs, capacity=1) as pool:
        env = pool.acquire()
        policy = Random(family)
        for task in tasks:
            t = time.perf_counter()
            observation = env.reset(task)
            resets.append(time.perf_counter() - t)
            for _ in range(kwargs.get("max_steps", kwargs.get("max_turns", 1))):
                action = policy.generate([[{"role": "user", "content": observation}]], None)[0].text
                t = time.perf_counter()
                step = env.step(action)
                steps.append(time.perf_counter() - t)
                observation = step.observation
                if step.done:
                    break
    print(f"{name:13s} reset {quantiles(resets)}   step {quantiles(steps)}   ({len(resets)} resets, {len(steps)} steps)")


def rollout_rate(name: str, episodes: int) -> None:
    kwargs, task_kwargs = SETTINGS[name]
    family = get_family(name)
    tasks = family.tasks("test", episodes, **task_kwargs)
    starts = [(t, 0) for t in tasks]
    rates = {}
    for processes, workers in ((False, 1), (True, 8)):
        with EnvPool(family, kwargs, processes=processes) as pool:
            list(run_episodes(starts, family, kwargs, Random(family), Sampling(), 2, env_workers=workers, pool=pool))  # starts the simulators
            t = time.perf_counter()
            played = list(run_episodes(starts, family, kwargs, Random(family), Sampling(), 2, env_workers=workers, pool=pool))
            rates[processes] = len(played) / (time.perf_counter() - t)
    print(f"{name:13s} lock-step rollout: {rates[False]:6.2f} episodes/s in this process, {rates[True]:6.2f} in worker "
          f"processes (8 threads stepping): ratio {rates[True] / rates[False]:.1f}x")


def generation_share(name: str, tasks_n: int) -> None:
    from leafe_recipe.context import composed, plain
    from leafe_recipe.explore import ExploreConfig, explore
    from leafe_recipe.policy.hf import HFPolicy
    from leafe_recipe import tiny

    kwargs, task_kwargs = SETTINGS[name]
    family = get_family(name)
    tasks = family.tasks("train" if name != "codecontests" else "test", tasks_n, **task_kwargs)
    policy = HFPolicy(str(tiny.build()))
    spent = [0.0]
    generate = policy.generate

    def timed(conversations, sampling):
        t = time.perf_counter()
        try:
            return generate(conversations, sampling)
        finally:
            spent[0] += time.perf_counter() - t

    policy.generate = timed
    settings = plain(composed("method=leafe", "budget=16").method.explore)
    config = ExploreConfig(**{**settings, "env_workers": 8, "max_divergence_share": 1.0}, history_window=2)
    sampling = Sampling(max_new_tokens=48)
    with tempfile.TemporaryDirectory() as out, EnvPool(family, kwargs) as pool:
        explore(tasks, family, kwargs, policy, sampling, sampling, config, Path(out) / "warm.jsonl", pool)  # starts the simulators
        spent[0] = 0.0
        t = time.perf_counter()
        explore(tasks, family, kwargs, policy, sampling, sampling, config, Path(out) / "t.jsonl", pool)
        total = time.perf_counter() - t
    print(f"{name:13s} stage 1 ({tasks_n} trees, budget 16, tiny model, 8 env workers): {100 * spent[0] / total:5.1f}% of "
          f"{total:5.1f} s spent generating")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--only", type=int, default=0, help=argparse.SUPPRESS)  # skip the first parts (development)
    ap.add_argument("--alfworld-data", default=os.environ.get("ALFWORLD_DATA", str(REPO.parent / "shared" / "data" / "alfworld")))
    args = ap.parse_args()
    os.environ["ALFWORLD_DATA"] = args.alfworld_data
    print(f"environments on {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    parts = [(latencies, SETTINGS), (rollout_rate, ("scienceworld", "alfworld")), (generation_share, ("scienceworld", "codecontests"))]
    for part, names in parts[args.only:] if args.only else parts:
        for name in names:
            try:
                part(name, args.episodes)
            except EnvUnavailable as err:
                print(f"{name:13s} skipped: {str(err)[:160]}")
        print()


if __name__ == "__main__":
    main()
